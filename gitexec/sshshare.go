package gitexec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Intracluster ssh connections are shared: the first ssh to a peer becomes
// a master (OpenSSH's ControlMaster) that later hops reuse for up to the
// persistence, so a push pays one handshake per peer per generation
// instead of one per hop. The control sockets live in
//
//	<base>/<family>/<generation>/<%C>
//
// base is a directory of this account's, mode 0700 (refused otherwise: a
// socket there is as good as the cluster key). family names the key's and
// known_hosts' paths, so that clusters sharing an account keep apart.
// generation names the key's
// and known_hosts' contents and a time slot: a changed key or known_hosts,
// or the slot's end, starts a new generation, and the masters of the old
// ones are told to stop. So no master outlives a revoked key or a replaced
// host key by more than one slot, and a busy master is still renewed.

// maxControlPath bounds a control socket's path: sun_path holds 108
// bytes, and ssh first binds the path with a suffix of 17 (".XXXXXXXXXXXXXXXX").
const maxControlPath = 108 - 1 - 17

// controlSlot bounds how long one master may live, busy or not.
const controlSlot = 10 * time.Minute

// SharedSSHCommand is SSHCommand with connection sharing under base, kept
// open persist after its last use; "" base or persist 0 turn it off. It
// fails, rather than share less safely, when base is not private.
func SharedSSHCommand(key, knownHosts string, connectTimeout, persist time.Duration, base string, now time.Time) (string, error) {
	cmd := SSHCommand(key, knownHosts, connectTimeout)
	if cmd == "" || base == "" || persist <= 0 {
		return cmd, nil
	}
	if !filepath.IsAbs(base) {
		return cmd, fmt.Errorf("ssh control directory %s is not an absolute path", base)
	}
	dir, err := controlDir(base, key, knownHosts, now)
	if err != nil {
		return cmd, err
	}
	// %C expands to 40 characters; a socket's path must fit in
	// sun_path (108 bytes, less ssh's temporary suffix), or ssh fails
	// every hop instead of sharing.
	if n := len(dir) + 1 + 40; n > maxControlPath {
		return cmd, fmt.Errorf("ssh control directory %s is too long for a socket path (%d bytes, at most %d)", base, n, maxControlPath)
	}
	alive := max(int(connectTimeout.Seconds())/3, 1)
	// From /: a master outlives the hop that started it, in that hop's
	// working directory, and git runs a hop inside a copy: a removal of
	// that copy would wait for the master (proc.Using) and give up.
	return "cd / && exec " + cmd + fmt.Sprintf(" -o ControlMaster=auto -o ControlPath=%s -o ControlPersist=%d -o ServerAliveInterval=%d -o ServerAliveCountMax=3",
		shellQuote(filepath.Join(strings.ReplaceAll(dir, "%", "%%"), "%C")), max(int(persist.Seconds()), 1), alive), nil
}

// ControlBase is where this account's control sockets go: a directory of
// its own under the temporary directory, or under /tmp when that one's
// path is too long: a socket's path must fit in 108 bytes.
func ControlBase() string {
	base := filepath.Join(os.TempDir(), "gitmesh-ssh-"+strconv.Itoa(os.Getuid()))
	if len(base) > maxControlBase {
		// A long TMPDIR: /tmp, checked like any other base.
		base = filepath.Join("/tmp", "gitmesh-ssh-"+strconv.Itoa(os.Getuid()))
	}
	return base
}

// maxControlBase is the longest base whose sockets' paths fit
// maxControlPath: base/family(8)/generation(16)/%C(40).
const maxControlBase = maxControlPath - (1 + 8 + 1 + 16 + 1 + 40)

// controlDir makes (or checks) base, the family's and the current
// generation's directories, and retires the family's other generations.
func controlDir(base, key, knownHosts string, now time.Time) (string, error) {
	fam := sha256.Sum256([]byte(key + "\x00" + knownHosts))
	family := filepath.Join(base, hex.EncodeToString(fam[:])[:8])
	gen, err := generation(key, knownHosts, now)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(family, gen)
	for _, d := range []string{base, family, dir} {
		if err := privateDir(d); err != nil {
			return "", err
		}
	}
	retireOthers(family, gen, now)
	return dir, nil
}

// privateDir makes dir with mode 0700, or checks that the one there is a
// real directory of this account that nobody else may enter, and that
// this account may write (a master's socket goes there: ssh fails a hop
// whose master cannot make its socket, rather than go unshared).
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("ssh control directory %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("ssh control directory %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("ssh control directory %s is not a directory", dir)
	case !ok || int(st.Uid) != os.Getuid():
		return fmt.Errorf("ssh control directory %s belongs to another account", dir)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("ssh control directory %s may be entered by other accounts (mode %#o)", dir, fi.Mode().Perm())
	case syscall.Access(dir, 0o3) != nil: // W_OK|X_OK: ssh could not make its socket there
		return fmt.Errorf("ssh control directory %s is not writable (mode %#o)", dir, fi.Mode().Perm())
	}
	return nil
}

// generation names the key's and known_hosts' contents and the time slot.
// A file that cannot be read is an error: ssh would fail on it anyway.
func generation(key, knownHosts string, now time.Time) (string, error) {
	h := sha256.New()
	for _, p := range []string{key, knownHosts} {
		b, err := os.ReadFile(p)
		if p != "" && err != nil {
			return "", fmt.Errorf("read %s for the ssh control generation: %w", p, err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00%s\x00", p, len(b), b)
	}
	fmt.Fprintf(h, "%d", now.Unix()/int64(controlSlot/time.Second))
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// retireOthers stops the masters of the family's other generations: they take no
// new sessions, finish the ones they carry and exit. A directory is
// removed only a slot after its last change, so that a process that chose
// it just before the slot ended still finds it.
func retireOthers(family, keep string, now time.Time) {
	entries, err := os.ReadDir(family)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name() == keep || !e.IsDir() {
			continue
		}
		old := filepath.Join(family, e.Name())
		socks, _ := os.ReadDir(old)
		for _, s := range socks {
			stopMaster(filepath.Join(old, s.Name()))
		}
		if fi, err := os.Lstat(old); err == nil && now.Sub(fi.ModTime()) > controlSlot {
			os.RemoveAll(old)
		}
	}
}

// stopMaster asks the master on sock, within a second, to take no new
// sessions, then removes the socket (a master killed -9 leaves it behind).
func stopMaster(sock string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	path := strings.ReplaceAll(sock, "%", "%%") // ControlPath expands %
	exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-o", "ControlPath="+path, "-O", "stop", "gitmesh-peer").Run()
	os.Remove(sock)
}
