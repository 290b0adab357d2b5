package serve

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"gitmesh/config"
	"gitmesh/public"
	"gitmesh/version"
)

// checkPeerAccess makes sure the settings let this device fetch from the
// ssh:// peers among peers: a cluster key ssh will use and a known_hosts
// file. It runs only when a fetch is needed, never on the fast path, so
// that a bad setting gives one clear sentence instead of ssh's noise.
func checkPeerAccess(s config.Settings, repo string, peers []version.Copy) error {
	overSSH := false
	for _, p := range peers {
		overSSH = overSSH || strings.HasPrefix(p.URL, "ssh://")
	}
	if !overSSH {
		return nil
	}
	fail := func(format string, args ...any) error {
		return public.Wrap(fmt.Errorf("cannot fetch the newest version of %s from a peer: %s", repo, fmt.Sprintf(format, args...)),
			fmt.Sprintf("this device cannot fetch the newest version of %s from its peers: its cluster key or known_hosts setting is wrong; tell an administrator", repo))
	}
	if s.ClusterKey == "" {
		return fail("no cluster key is configured; set cluster_key (or GITMESH_CLUSTER_KEY) to the cluster's private key")
	}
	if err := readable(s.ClusterKey); err != nil {
		return fail("the cluster key %s %v; set cluster_key to the cluster's private key", s.ClusterKey, err)
	}
	if st, err := os.Stat(s.ClusterKey); err == nil && st.Mode().Perm()&0o077 != 0 && ownedByMe(st) {
		return fail("the cluster key %s is readable by others (mode %04o) and ssh refuses such a key; run chmod 600 %s",
			s.ClusterKey, st.Mode().Perm(), s.ClusterKey)
	}
	if s.KnownHosts == "" {
		return fail("no known_hosts file is configured; set known_hosts (or GITMESH_KNOWN_HOSTS) to the file holding the peers' host keys")
	}
	if err := readable(s.KnownHosts); err != nil {
		return fail("the known_hosts file %s %v; set known_hosts to the file holding the peers' host keys", s.KnownHosts, err)
	}
	return nil
}

// readable returns why path cannot be read, as the end of a sentence.
func readable(path string) error {
	f, err := os.Open(path)
	if err == nil {
		_, err = f.Read(make([]byte, 1))
		f.Close()
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return errors.New("is empty")
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("does not exist")
	case errors.Is(err, fs.ErrPermission):
		return errors.New("cannot be read (permission denied)")
	default:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot be read (%v)", err)
	}
}

// ownedByMe mirrors ssh's own test: it refuses a group- or world-readable
// key only when the key belongs to the user running ssh.
func ownedByMe(st fs.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Geteuid()
}
