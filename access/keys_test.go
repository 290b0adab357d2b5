package access

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
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
		{"truncated", "ssh-ed25519 " + base64.StdEncoding.EncodeToString(mustDecode(edBlob)[:30]), "not a valid key"},
		{"short ed25519", "ssh-ed25519 " + base64.StdEncoding.EncodeToString(append(mustDecode(edBlob)[:15], 0, 0, 0, 1, 7)), "not a valid key"},
		{"trailing data", "ssh-ed25519 " + base64.StdEncoding.EncodeToString(append(mustDecode(edBlob), 0, 0, 0, 0)), "not a valid key"},
		{"control char in comment", "ssh-ed25519 " + edBlob + " a\x1bb", "control character"},
		{"C1 control in comment", "ssh-ed25519 " + edBlob + " a\u009bb", "control character"},
		{"bidi override in comment", "ssh-ed25519 " + edBlob + " alice\u202eevil", "control character"},
		{"invalid UTF-8 in comment", "ssh-ed25519 " + edBlob + " a\xffb", "UTF-8"},
		{"single option", "restrict ssh-ed25519 " + edBlob, "starts with options"},
		{"rsa certificate", "ssh-rsa-cert-v01@openssh.com " + edBlob, "certificates are not"},
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
	for _, k := range testKeys(f) {
		f.Add(k.Type() + " " + base64.StdEncoding.EncodeToString(k.Marshal()) + " c")
	}
	f.Add("ecdsa-sha2-nistp256 " + offCurve(f))
	f.Fuzz(func(t *testing.T, in string) {
		k, err := ParseKey(in)
		if err != nil {
			return
		}
		line := AuthorizedLine("gitmesh serve u", StoredKey{Key: k, User: "u"})
		if strings.ContainsAny(line, "\r\n\x00") {
			t.Fatalf("accepted key makes a broken line: %q", line)
		}
		if !acceptedTypes[k.Type] {
			t.Fatalf("accepted type %q", k.Type)
		}
		// sshd's own reading of the line gives back the same key, with
		// gitmesh's options and nothing else.
		pub, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil || len(opts) != 2 || pub.Type() != k.Type || ssh.FingerprintSHA256(pub) != k.Fingerprint {
			t.Fatalf("line %q reads back as %v %v %v", line, pub, opts, err)
		}
		if base64.StdEncoding.EncodeToString(pub.Marshal()) != k.Blob {
			t.Fatalf("stored blob %q is not the canonical encoding", k.Blob)
		}
	})
}

// testKeys are public keys of every accepted type, made here.
func testKeys(t testing.TB) []ssh.PublicKey {
	var out []ssh.PublicKey
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, mustPublic(t, &k.PublicKey))
	}
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	out = append(out, mustPublic(t, &r.PublicKey), mustPublic(t, ed))
	// Security-key types, in the wire format OpenSSH writes them.
	ec := out[0].(ssh.CryptoPublicKey).CryptoPublicKey().(*ecdsa.PublicKey)
	point := elliptic.Marshal(elliptic.P256(), ec.X, ec.Y) //nolint:staticcheck // the SSH wire format
	for _, blob := range [][]byte{
		ssh.Marshal(struct{ Name, Curve, Point, App string }{ssh.KeyAlgoSKECDSA256, "nistp256", string(point), "ssh:"}),
		ssh.Marshal(struct{ Name, Key, App string }{ssh.KeyAlgoSKED25519, string(ed), "ssh:"}),
	} {
		k, err := ssh.ParsePublicKey(blob)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

func mustPublic(t testing.TB, k any) ssh.PublicKey {
	p, err := ssh.NewPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// offCurve is the base64 blob of an ecdsa-sha2-nistp256 key whose point
// is well formed but not on the curve.
func offCurve(t testing.TB) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	point := elliptic.Marshal(elliptic.P256(), k.X, k.Y) //nolint:staticcheck // the SSH wire format
	point[len(point)-1] ^= 1
	return base64.StdEncoding.EncodeToString(ssh.Marshal(struct{ Name, Curve, Point string }{ssh.KeyAlgoECDSA256, "nistp256", string(point)}))
}

func TestParseKeyEveryAcceptedType(t *testing.T) {
	for _, pub := range testKeys(t) {
		blob := base64.StdEncoding.EncodeToString(pub.Marshal())
		k, err := ParseKey(pub.Type() + " " + blob + " me@host\n")
		if err != nil {
			t.Errorf("%s: %v", pub.Type(), err)
			continue
		}
		if k.Type != pub.Type() || k.Blob != blob || k.Comment != "me@host" || k.Fingerprint != ssh.FingerprintSHA256(pub) {
			t.Errorf("%s: got %+v", pub.Type(), k)
		}
	}
}

// The point of an ECDSA key must lie on its curve: a key that names the
// right curve but whose point is elsewhere is refused.
func TestParseKeyRefusesECDSAPointOffTheCurve(t *testing.T) {
	_, err := ParseKey("ecdsa-sha2-nistp256 " + offCurve(t) + " x")
	if err == nil || !strings.HasPrefix(err.Error(), "malformed public key: ") || !strings.Contains(err.Error(), "not a valid key") {
		t.Fatalf("off-curve ECDSA key: %v", err)
	}
}

func TestParseKeyRefusesShortRSA(t *testing.T) {
	n := new(big.Int).Lsh(big.NewInt(1), 1023)
	n.Sub(n, big.NewInt(1)) // 1023 bits
	k := mustPublic(t, &rsa.PublicKey{N: n, E: 65537})
	_, err := ParseKey("ssh-rsa " + base64.StdEncoding.EncodeToString(k.Marshal()))
	if err == nil || !strings.Contains(err.Error(), "shorter than 1024 bits") {
		t.Fatalf("1023-bit RSA key: %v", err)
	}
	n.Lsh(n, 1) // 1024 bits
	k = mustPublic(t, &rsa.PublicKey{N: n, E: 65537})
	if _, err := ParseKey("ssh-rsa " + base64.StdEncoding.EncodeToString(k.Marshal())); err != nil {
		t.Fatalf("1024-bit RSA key: %v", err)
	}
}

// A private key is named as one, and none of it is repeated back.
func TestParseKeyRefusesPrivateKeys(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	openssh, err := ssh.MarshalPrivateKey(ed, "alice@laptop")
	if err != nil {
		t.Fatal(err)
	}
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(r)}
	for name, text := range map[string]string{
		"openssh":    string(pem.EncodeToMemory(openssh)),
		"pkcs1":      string(pem.EncodeToMemory(pkcs1)),
		"pkcs8":      "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBVX\n-----END PRIVATE KEY-----\n",
		"one line":   strings.ReplaceAll(string(pem.EncodeToMemory(openssh)), "\n", " "),
		"putty":      "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: x\nPublic-Lines: 2\nAAAA\n",
		"after .pub": "ssh-ed25519 " + edBlob + "\n" + string(pem.EncodeToMemory(openssh)),
	} {
		_, err := ParseKey(text)
		if err == nil || !strings.Contains(err.Error(), "this is a private key") || !strings.Contains(err.Error(), ".pub") {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, l := range strings.Fields(text) {
			if len(l) > 8 && strings.Contains(err.Error(), l) {
				t.Errorf("%s: the message repeats %q of the key: %v", name, l, err)
			}
		}
	}
}
