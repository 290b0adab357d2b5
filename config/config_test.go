package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	d := Defaults()
	tests := []struct {
		name string
		got  Duration
		want time.Duration
	}{
		{"lock_timeout", d.LockTimeout, time.Minute},
		{"fetch_timeout", d.FetchTimeout, 5 * time.Minute},
		{"connect_timeout", d.ConnectTimeout, 5 * time.Second},
		{"record_timeout", d.RecordTimeout, 2 * time.Minute},
	}
	for _, tt := range tests {
		if tt.got.D() != tt.want {
			t.Errorf("Defaults().%s = %s, want %s", tt.name, tt.got.D(), tt.want)
		}
	}
	if d.DatabaseURL != "" || d.Device != "" || d.RepoRoot != "" || d.LogFile != "" ||
		d.ClusterKey != "" || d.KnownHosts != "" || d.Path != "" {
		t.Errorf("Defaults() sets a string setting: %+v", d)
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gitmesh.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFileFull(t *testing.T) {
	path := writeConfig(t, `
# every setting
database_url    = "postgres://gitmesh@db/gitmesh?sslmode=disable"
device          = "a"
repo_root       = "/srv/git"
log_file        = "/var/log/gitmesh.log"
cluster_key     = "/etc/gitmesh/id_ed25519"
known_hosts     = "/etc/gitmesh/known_hosts"
lock_timeout    = "90s"
fetch_timeout   = "10m"
connect_timeout = "1500ms"
record_timeout  = "1h2m3s"
ssh_control_persist = "5m"
keys_database_url = "host=/run/postgresql dbname=gitmesh user=gitmesh_keys"
max_user_sessions = 4
max_push_waiters  = 0
push_timeout      = "2h"
push_idle_timeout = "90s"
max_push_bytes    = 104857600
max_push_refs     = 500
log_retention     = "720h"
copies            = 5
`)
	s := Defaults()
	if err := LoadFile(&s, path); err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	want := Settings{
		DatabaseURL:    "postgres://gitmesh@db/gitmesh?sslmode=disable",
		Device:         "a",
		RepoRoot:       "/srv/git",
		LogFile:        "/var/log/gitmesh.log",
		ClusterKey:     "/etc/gitmesh/id_ed25519",
		KnownHosts:     "/etc/gitmesh/known_hosts",
		LockTimeout:    Duration(90 * time.Second),
		FetchTimeout:   Duration(10 * time.Minute),
		ConnectTimeout: Duration(1500 * time.Millisecond),
		RecordTimeout:  Duration(time.Hour + 2*time.Minute + 3*time.Second),
		Path:           path,
		// Shared intracluster connections.
		SSHControlPersist: Duration(5 * time.Minute),
		// Limits.
		KeysDatabaseURL: "host=/run/postgresql dbname=gitmesh user=gitmesh_keys",
		MaxUserSessions: 4,
		MaxPushWaiters:  0,
		PushTimeout:     Duration(2 * time.Hour),
		PushIdleTimeout: Duration(90 * time.Second),
		MaxPushBytes:    100 << 20,
		MaxPushRefs:     500,
		LogRetention:    Duration(720 * time.Hour),
		Copies:          5,
	}
	if s != want {
		t.Errorf("LoadFile =\n %+v\nwant\n %+v", s, want)
	}
}

// A file overlays the settings: what it does not name keeps its value.
func TestLoadFilePartialKeepsDefaults(t *testing.T) {
	path := writeConfig(t, "device = \"b\"\nlock_timeout = \"2m\"\n")
	s := Defaults()
	s.RepoRoot = "/from/before"
	if err := LoadFile(&s, path); err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	want := Defaults()
	want.RepoRoot = "/from/before"
	want.Device = "b"
	want.LockTimeout = Duration(2 * time.Minute)
	want.Path = path
	if s != want {
		t.Errorf("LoadFile =\n %+v\nwant\n %+v", s, want)
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		mention []string // substrings the error must contain
	}{
		{"unknown key", "device = \"a\"\nlock_timout = \"1s\"\n", []string{"unknown setting", "lock_timout", "did you mean lock_timeout?"}},
		{"dashes for underscores", "repo-root = \"/srv/git/repos\"\n", []string{`unknown setting "repo-root"; did you mean repo_root?`}},
		{"unknown key in a table", "device = \"a\"\n[extra]\ncolour = \"blue\"\n", []string{"unknown setting", "extra"}},
		{"bad duration", "lock_timeout = \"ninety seconds\"\n", []string{"lock_timeout"}},
		{"duration without unit", "fetch_timeout = \"90\"\n", []string{"fetch_timeout"}},
		{"duration as a number", "fetch_timeout = 90\n", []string{"fetch_timeout"}},
		{"wrong type", "device = 7\n", []string{"device"}},
		{"not TOML", "device = \"a\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.text)
			s := Defaults()
			err := LoadFile(&s, path)
			if err == nil {
				t.Fatalf("LoadFile(%q) succeeded, want an error", tt.text)
			}
			msg := err.Error()
			for _, m := range append([]string{path}, tt.mention...) {
				if !strings.Contains(msg, m) {
					t.Errorf("error %q does not mention %q", msg, m)
				}
			}
			if s.Path != "" {
				t.Errorf("Path = %q after a failed load, want empty", s.Path)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.toml")
	s := Defaults()
	err := LoadFile(&s, path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadFile(missing) = %v, want an fs.ErrNotExist error", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	if s != Defaults() {
		t.Errorf("settings changed by a failed load: %+v", s)
	}
}

func TestNeed(t *testing.T) {
	tests := []struct {
		name              string
		s                 Settings
		dbErr, deviceErr  bool
		deviceErrMentions []string // the TOML key, the variable and the flag
	}{
		{"empty", Settings{}, true, true, []string{"set device in the settings file", "GITMESH_DEVICE", "--device"}},
		{"database only", Settings{DatabaseURL: "postgres://x"}, false, true, []string{"set device in", "GITMESH_DEVICE", "--device"}},
		{"device without root", Settings{Device: "a"}, true, true, []string{"set repo_root in", "GITMESH_REPO_ROOT", "--repo-root"}},
		{"all", Settings{DatabaseURL: "postgres://x", Device: "a", RepoRoot: "/srv"}, false, false, nil},
	}
	for _, tt := range tests {
		if err := tt.s.NeedDatabase(); (err != nil) != tt.dbErr {
			t.Errorf("%s: NeedDatabase() = %v, want error %v", tt.name, err, tt.dbErr)
		}
		err := tt.s.NeedDevice()
		if (err != nil) != tt.deviceErr {
			t.Errorf("%s: NeedDevice() = %v, want error %v", tt.name, err, tt.deviceErr)
		}
		for _, m := range tt.deviceErrMentions {
			if err != nil && !strings.Contains(err.Error(), m) {
				t.Errorf("%s: NeedDevice() = %q, want it to mention %s", tt.name, err, m)
			}
		}
	}
}

func TestWriteQuorum(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Quorum
		bad  bool
	}{
		{`write_quorum = "majority"`, 0, false},
		{`write_quorum = 2`, 2, false},
		{`write_quorum = "3"`, 3, false},
		{`write_quorum = 0`, 0, true},
		{`write_quorum = -1`, 0, true},
		{`write_quorum = "most"`, 0, true},
		{`write_quorum = "0"`, 0, true},
	} {
		s := Defaults()
		err := LoadFile(&s, writeConfig(t, tc.line+"\n"))
		if (err != nil) != tc.bad || !tc.bad && s.WriteQuorum != tc.want {
			t.Errorf("%s: quorum %v, error %v", tc.line, s.WriteQuorum, err)
		}
		if err != nil && !strings.Contains(err.Error(), "majority") {
			t.Errorf("%s: the error does not say what is allowed: %v", tc.line, err)
		}
	}
	if Defaults().WriteQuorum.String() != "majority" {
		t.Error("the default write_quorum is not a majority")
	}
}
