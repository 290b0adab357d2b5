package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// Keys of every accepted type, as ssh-keygen writes them, are stored with
// the fingerprint ssh-keygen -l prints; keys-command finds each again by
// the type and blob sshd hands it.
func TestKeyAddAcceptsEveryTypeSSHKeygenMakes(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	c.User("bob")
	for _, tc := range []struct{ typ, bits string }{
		{"ed25519", ""}, {"rsa", "1024"}, {"rsa", "3072"}, {"ecdsa", "256"}, {"ecdsa", "384"}, {"ecdsa", "521"},
	} {
		key := filepath.Join(c.Dir, "id_"+tc.typ+tc.bits)
		args := []string{"-q", "-t", tc.typ, "-N", "", "-C", "bob@" + tc.typ, "-f", key}
		if tc.bits != "" {
			args = append(args, "-b", tc.bits)
		}
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %v: %v: %s", args, err, out)
		}
		fp := fingerprint(t, key)
		if out := c.MustAdmin("key", "add", "bob", key+".pub"); !strings.Contains(out, fp) {
			t.Errorf("%s %s: key add says %q, want fingerprint %s", tc.typ, tc.bits, out, fp)
		}
		if list := c.MustAdmin("key", "list"); !strings.Contains(list, fp+"  bob@"+tc.typ) {
			t.Errorf("%s %s: key list lacks %s:\n%s", tc.typ, tc.bits, fp, list)
		}
		f := strings.Fields(readFile(t, key+".pub"))
		login := currentLogin(t)
		r := c.Devices["a"].Run(nil, "keys-command", login, f[0], f[1])
		if r.Code != 0 || !strings.Contains(r.Stdout, "serve bob\",restrict "+f[0]+" "+f[1]) {
			t.Errorf("%s %s: keys-command: exit %d, %q %q", tc.typ, tc.bits, r.Code, r.Stdout, r.Stderr)
		}
	}
}

func currentLogin(t *testing.T) string {
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
