package gitexec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The control directory is refused unless it is a private directory of
// this account: a socket there is as good as the cluster key.
func TestSharedSSHCommandRefusesAControlDirectoryOthersCanReach(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(key, []byte("k1"), 0o600)
	os.WriteFile(kh, []byte("h1"), 0o644)
	now := time.Unix(1_800_000_000, 0)

	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	elsewhere := filepath.Join(dir, "elsewhere")
	os.Mkdir(elsewhere, 0o700)
	link := filepath.Join(dir, "link")
	os.Symlink(elsewhere, link)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	for _, base := range []string{open, link, file} {
		cmd, err := SharedSSHCommand(key, kh, 5*time.Second, time.Minute, base, now)
		if err == nil {
			t.Errorf("base %s accepted: %s", base, cmd)
		}
		if strings.Contains(cmd, "ControlMaster") {
			t.Errorf("base %s: the command shares anyway: %s", base, cmd)
		}
	}

	// A base too long for a socket path below it would make ssh fail
	// every hop: refused, so hops go unshared instead.
	long := filepath.Join(dir, strings.Repeat("x", 30))
	if cmd, err := SharedSSHCommand(key, kh, 5*time.Second, time.Minute, long, now); err == nil || strings.Contains(cmd, "ControlMaster") {
		t.Errorf("base %s (%d bytes) accepted: %s", long, len(long), cmd)
	}
	short, err := os.MkdirTemp("", "gm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	// A directory this account may not write (root may write anywhere).
	if os.Geteuid() != 0 {
		ro := filepath.Join(short, "ro")
		os.Mkdir(ro, 0o500)
		if cmd, err := SharedSSHCommand(key, kh, 5*time.Second, time.Minute, ro, now); err == nil || strings.Contains(cmd, "ControlMaster") {
			t.Errorf("unwritable base %s accepted: %s", ro, cmd)
		}
	}
	base := filepath.Join(short, "ok")
	cmd, err := SharedSSHCommand(key, kh, 5*time.Second, time.Minute, base, now)
	if err != nil || !strings.Contains(cmd, "ControlMaster=auto") || !strings.Contains(cmd, "ControlPersist=60") {
		t.Fatalf("private base: %q, %v", cmd, err)
	}
	if cmd2, _ := SharedSSHCommand(key, kh, 5*time.Second, 0, base, now); strings.Contains(cmd2, "ControlMaster") {
		t.Fatalf("persist 0 still shares: %s", cmd2)
	}

	// A new key, a new known_hosts or the next slot: a new generation.
	gen := func(at time.Time) string {
		c, err := SharedSSHCommand(key, kh, 5*time.Second, time.Minute, base, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := gen(now)
	os.WriteFile(key, []byte("k2"), 0o600)
	if gen(now) == first {
		t.Fatal("a changed key keeps the same control path")
	}
	second := gen(now)
	os.WriteFile(kh, []byte("h2"), 0o644)
	if gen(now) == second {
		t.Fatal("a changed known_hosts keeps the same control path")
	}
	third := gen(now)
	if gen(now.Add(controlSlot)) == third {
		t.Fatal("the next slot keeps the same control path")
	}
}
