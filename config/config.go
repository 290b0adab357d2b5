// Package config holds gitmesh's settings, read once at start from an
// optional TOML file, then the environment, then flags (later wins).
// It knows nothing of what the settings drive:
// no database, no git, no other gitmesh package.
package config

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Settings is everything gitmesh is told from outside.
type Settings struct {
	DatabaseURL    string   `toml:"database_url"`
	Device         string   `toml:"device"`
	RepoRoot       string   `toml:"repo_root"`
	LogFile        string   `toml:"log_file"`
	ClusterKey     string   `toml:"cluster_key"`
	KnownHosts     string   `toml:"known_hosts"`
	LockTimeout    Duration `toml:"lock_timeout"`
	FetchTimeout   Duration `toml:"fetch_timeout"`
	ConnectTimeout Duration `toml:"connect_timeout"`
	RecordTimeout  Duration `toml:"record_timeout"`
	WriteQuorum    Quorum   `toml:"write_quorum"`
	// Copies is how many devices hold a new repository (all of them
	// when fewer are registered).
	Copies int `toml:"copies"`
	// SSHControlPersist keeps an intracluster ssh master open this long
	// after its last use; 0 turns connection sharing off.
	SSHControlPersist Duration `toml:"ssh_control_persist"`
	// SSHControlDir is where the shared connections' control sockets go
	// ("": gitexec.ControlBase, under the temporary directory).
	SSHControlDir string `toml:"ssh_control_dir"`
	// Limits: see limits.go.
	KeysDatabaseURL string   `toml:"keys_database_url"`
	MaxUserSessions int      `toml:"max_user_sessions"`
	MaxPushWaiters  int      `toml:"max_push_waiters"`
	PushTimeout     Duration `toml:"push_timeout"`
	PushIdleTimeout Duration `toml:"push_idle_timeout"`
	MaxPushBytes    int64    `toml:"max_push_bytes"`
	MaxPushRefs     int      `toml:"max_push_refs"`
	LogRetention    Duration `toml:"log_retention"`
	// HTTPAnonymousUser is the user an HTTP request without REMOTE_USER
	// reads as; "" (the default) answers such a request 401.
	HTTPAnonymousUser string `toml:"http_anonymous_user"`
	// ClusterFrom is sshd's from= pattern list for the cluster key's line.
	ClusterFrom string `toml:"cluster_from"`
	// Path is the config file the settings came from, if any.
	Path string `toml:"-"`
}

// Defaults are the settings before any file, variable or flag.
func Defaults() Settings {
	return Settings{
		LockTimeout:    Duration(60 * time.Second),
		FetchTimeout:   Duration(5 * time.Minute),
		ConnectTimeout: Duration(5 * time.Second),
		RecordTimeout:  Duration(2 * time.Minute),
		// A minute covers a burst of pushes; an idle cluster holds no
		// masters for long.
		SSHControlPersist: Duration(time.Minute),
		Copies:            DefaultCopies,
		// Limits: see limits.go.
		MaxUserSessions: DefaultMaxUserSessions,
		MaxPushWaiters:  DefaultMaxPushWaiters,
		PushTimeout:     Duration(30 * time.Minute),
		PushIdleTimeout: Duration(5 * time.Minute),
		MaxPushBytes:    DefaultMaxPushBytes,
		MaxPushRefs:     DefaultMaxPushRefs,
		LogRetention:    Duration(DefaultLogRetention),
	}
}

// Duration reads "90s" or "2m" from TOML.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Quorum is write_quorum: 0 for "majority", else how many devices must
// hold a push before it is acknowledged.
type Quorum int

// UnmarshalText implements encoding.TextUnmarshaler: "majority" or 1..N.
func (q *Quorum) UnmarshalText(b []byte) error {
	v, err := ParseQuorum(string(b))
	*q = v
	return err
}

// ParseQuorum reads a write_quorum value.
func ParseQuorum(s string) (Quorum, error) {
	if s == "majority" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("write_quorum must be \"majority\" or a number of devices from 1 up, not %q", s)
	}
	return Quorum(n), nil
}

// String renders the value as it is written.
func (q Quorum) String() string {
	if q == 0 {
		return "majority"
	}
	return strconv.Itoa(int(q))
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// LoadFile overlays the TOML file at path onto s. Unknown keys are an error:
// a misspelt setting must not be silently ignored.
func LoadFile(s *Settings, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	md, err := toml.Decode(string(b), s)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		key := und[0].String()
		if near := Closest(key, Keys()); near != "" {
			return fmt.Errorf("config %s: unknown setting %q; did you mean %s?", path, key, near)
		}
		return fmt.Errorf("config %s: unknown setting %q", path, key)
	}
	// A bare number bypasses UnmarshalText.
	if md.IsDefined("write_quorum") && md.Type("write_quorum") == "Integer" && s.WriteQuorum < 1 {
		return fmt.Errorf("config %s: write_quorum must be \"majority\" or a number of devices from 1 up", path)
	}
	if err := s.CheckLimits(); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	s.Path = path
	return nil
}

// UnsetError is a required setting left out; it names the setting.
type UnsetError string

func (e UnsetError) Error() string { return string(e) }

// NeedDatabase reports a clear error when no database is configured.
func (s Settings) NeedDatabase() error {
	if s.DatabaseURL == "" {
		return UnsetError("no database configured: set database_url in the settings file given with --config (or GITMESH_CONFIG), or give --database-url or GITMESH_DATABASE_URL")
	}
	return nil
}

// NeedDevice reports a clear error when this device is not named or has no
// repo root.
func (s Settings) NeedDevice() error {
	if s.Device == "" {
		return UnsetError(NoDevice)
	}
	if s.RepoRoot == "" {
		return UnsetError(NoRepoRoot)
	}
	return nil
}

// The sentences for a missing device or repo root: like the database's,
// they name the TOML key, the environment variable and the flag.
const (
	NoDevice   = "no device configured: set device in the settings file given with --config (or GITMESH_CONFIG), or give --device or GITMESH_DEVICE"
	NoRepoRoot = "no repo root configured: set repo_root in the settings file given with --config (or GITMESH_CONFIG), or give --repo-root or GITMESH_REPO_ROOT"
)

// Keys are the TOML keys a settings file may hold.
func Keys() []string {
	var keys []string
	t := reflect.TypeFor[Settings]()
	for i := range t.NumField() {
		if k := t.Field(i).Tag.Get("toml"); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// Closest is the name among names that word most likely misspells (the
// same but for case, '-' for '_', or at most two letters changed, added,
// removed or swapped), or "" when none is that close.
func Closest(word string, names []string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	best, bestD := "", 3
	for _, n := range names {
		d := distance(norm(word), norm(n))
		if d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours.
func distance(a, b string) int {
	x, y := []rune(a), []rune(b)
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}
