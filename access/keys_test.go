package access

import (
	"encoding/base64"
	"strings"
	"testing"
)

// An ed25519 public key and its fingerprint as
// ssh-keygen -l prints it.
const (
	edBlob = "AAAAC3NzaC1lZDI1NTE5AAAAIDNlD+dbeP9p2FAjUcaTKKvX6Tf5mv8VFeyPLq14z25R"
	edFP   = "SHA256:Nxn7FjHO6g4xdc9XQPh351TPSk457Q2Oh4VuTA7no+8"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		name, in, err string
	}{
		{"plain", "ssh-ed25519 " + edBlob + " alice@laptop\n", ""},
		{"comment with spaces", "# alice\n\nssh-ed25519 " + edBlob + " alice at  home\n", ""},
		{"no comment", "ssh-ed25519 " + edBlob, ""},
		{"empty", "\n# nothing\n", "no key found"},
		{"two keys", "ssh-ed25519 " + edBlob + "\nssh-ed25519 " + edBlob + "\n", "found 2 lines"},
		{"options", `restrict,command="sh" ssh-ed25519 ` + edBlob, "starts with options"},
		{"unknown type", "ssh-dss " + edBlob, "is not accepted"},
		{"certificate", "ssh-ed25519-cert-v01@openssh.com " + edBlob, "is not accepted"},
		{"no blob", "ssh-ed25519", "no base64 part"},
		{"bad base64", "ssh-ed25519 " + edBlob[:20] + "!" + edBlob[21:], "damaged"},
		{"non-canonical base64", "ssh-ed25519 " + strings.TrimRight(edBlob, "=") + "S", "damaged"},
		{"type mismatch", "ssh-rsa " + edBlob, "key data says"},
		{"truncated", "ssh-ed25519 " + base64.StdEncoding.EncodeToString(mustDecode(edBlob)[:30]), "truncated"},
		{"short ed25519", "ssh-ed25519 " + base64.StdEncoding.EncodeToString(append(mustDecode(edBlob)[:15], 0, 0, 0, 1, 7)), "32 bytes"},
		{"control char in comment", "ssh-ed25519 " + edBlob + " a\x1bb", "control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKey(tc.in)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("ParseKey: %v", err)
				}
				if k.Type != "ssh-ed25519" || k.Blob != edBlob || k.Fingerprint != edFP {
					t.Fatalf("got %+v", k)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "malformed public key: ") {
				t.Fatalf("ParseKey(%q) = %v; want an error saying %q", tc.in, err, tc.err)
			}
		})
	}
}

func mustDecode(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestAuthorizedLine(t *testing.T) {
	k := StoredKey{Key: Key{Type: "ssh-ed25519", Blob: edBlob, Comment: "a b"}, User: "alice"}
	got := AuthorizedLine(ForcedCommand("/usr/local/bin/gitmesh", `/etc/git mesh/"x".toml`, k), k)
	want := `command="/usr/local/bin/gitmesh --config '/etc/git mesh/\"x\".toml' serve alice",restrict ssh-ed25519 ` + edBlob + " a b"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	k.User = ""
	if got := ForcedCommand("/bin/gitmesh", "", k); got != "/bin/gitmesh serve --cluster" {
		t.Fatalf("cluster command: %s", got)
	}
	if err := CheckPath("config", "/etc/a\nb"); err == nil {
		t.Fatal("a newline in a path was accepted")
	}
}

// FuzzParseKey: whatever the input, ParseKey never panics, and a key it
// accepts is one line sshd can read back.
func FuzzParseKey(f *testing.F) {
	f.Add("ssh-ed25519 " + edBlob + " alice")
	f.Add("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== x")
	f.Add(`command="x" ssh-ed25519 ` + edBlob)
	f.Fuzz(func(t *testing.T, in string) {
		k, err := ParseKey(in)
		if err != nil {
			return
		}
		line := AuthorizedLine("gitmesh serve u", StoredKey{Key: k, User: "u"})
		if strings.ContainsAny(line, "\r\n\x00") {
			t.Fatalf("accepted key makes a broken line: %q", line)
		}
		if _, ok := keyFields[k.Type]; !ok {
			t.Fatalf("accepted type %q", k.Type)
		}
	})
}
