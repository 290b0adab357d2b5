package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"gitmesh/admin"
	"gitmesh/gitexec"
)

// Prober reaches devices the way their peers do: a local-path device by
// its directory, an ssh:// device by ssh with the cluster key.
type Prober struct {
	ClusterKey, KnownHosts string
	ConnectTimeout         time.Duration
}

// ErrNotProbed means this host lacks what reaching a device needs: the
// cluster key and known_hosts, for an ssh:// device.
var ErrNotProbed = errors.New("cluster_key and known_hosts are not set here, and an ssh:// device is reached with them")

// Probe returns why dev cannot be reached, or nil.
func (p Prober) Probe(ctx context.Context, dev admin.Device) error {
	if filepath.IsAbs(dev.URL) {
		return localRoot(dev.URL)
	}
	return p.ssh(ctx, dev.URL)
}

// localRoot: the repo root must exist and be readable.
func localRoot(dir string) error {
	_, err := os.ReadDir(dir)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("its repo root (the device's URL) does not exist")
	case errors.Is(err, fs.ErrPermission):
		return errors.New("its repo root (the device's URL) cannot be read (permission denied)")
	}
	return errors.New("its repo root (the device's URL) cannot be read")
}

// ssh logs in with the cluster key and asks for nothing: the peer's
// forced command (`gitmesh serve --cluster`) answers such a probe with
// exit 0 when its repo root can be read (an older gitmesh refuses it as
// an interactive login, exit 2: reachable too). ssh's own failure (exit
// 255) means unreachable. Bounded by the connect timeout, three times
// over (connect, key exchange, the answer).
func (p Prober) ssh(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return errors.New("its URL is not an ssh:// URL gitmesh can use")
	}
	if p.ClusterKey == "" || p.KnownHosts == "" {
		return ErrNotProbed
	}
	limit := max(3*p.ConnectTimeout, 5*time.Second)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	port := u.Port()
	if port == "" {
		port = "22"
	}
	dest := u.Hostname()
	if u.User != nil {
		dest = u.User.Username() + "@" + dest
	}
	// The very command peers fetch with, so the probe tests their path.
	script := "exec " + gitexec.SSHCommand(p.ClusterKey, p.KnownHosts, p.ConnectTimeout) + ` -T -p "$1" -- "$2"`
	cmd := exec.CommandContext(ctx, "sh", "-c", script, "sh", port, dest)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("no answer over ssh within %s", limit)
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.ExitCode() == 255:
		return fmt.Errorf("ssh failed: %s", lastLine(stderr.String()))
	case errors.As(err, &ee) && ee.ExitCode() == 2:
		return nil // an older gitmesh serve --cluster refused the login: it runs
	case errors.As(err, &ee):
		return fmt.Errorf("ssh let the cluster key in, but the device answered (exit %d): %s",
			ee.ExitCode(), lastLine(stderr.String()))
	}
	return fmt.Errorf("run ssh: %v", err)
}

// lastLine is the last non-empty line of s, with control characters
// replaced: ssh's reason, safe on one line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, lines[len(lines)-1])
	if l == "" {
		return "no reason given"
	}
	return l
}
