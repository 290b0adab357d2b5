package access

import (
	"bytes"
	"context"
	"crypto/rsa"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"gitmesh/termsafe"
)

// ErrBadKey marks a public key gitmesh will not store.
var ErrBadKey = errors.New("malformed public key")

// Key is one OpenSSH public key, as a .pub file or authorized_keys holds it.
type Key struct {
	Type        string // "ssh-ed25519"
	Blob        string // base64 of the wire-format key
	Comment     string
	Fingerprint string // "SHA256:..." as ssh-keygen -l prints it
}

// acceptedTypes are the key types gitmesh stores. Certificates and the
// obsolete ssh-dss are not accepted.
var acceptedTypes = map[string]bool{
	ssh.KeyAlgoED25519:    true,
	ssh.KeyAlgoRSA:        true,
	ssh.KeyAlgoECDSA256:   true,
	ssh.KeyAlgoECDSA384:   true,
	ssh.KeyAlgoECDSA521:   true,
	ssh.KeyAlgoSKED25519:  true,
	ssh.KeyAlgoSKECDSA256: true,
}

const keyTypeList = "ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521 or their sk- variants"

// ParseKey reads exactly one public key from text (blank lines and '#'
// comments aside): "TYPE BASE64 [COMMENT]", without authorized_keys options.
// golang.org/x/crypto/ssh parses the key itself (wire format, sizes, an
// ECDSA point on its curve); ParseKey adds gitmesh's rules around it. A
// private key is recognised and refused without repeating any of it.
func ParseKey(text string) (Key, error) {
	if isPrivateKey(text) {
		return Key{}, fmt.Errorf("%w: this is a private key, which must stay secret on its owner's machine; give the public key, the .pub file next to it (e.g. id_ed25519.pub)", ErrBadKey)
	}
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	switch {
	case len(lines) == 0:
		return Key{}, fmt.Errorf("%w: no key found; give the one line of a .pub file", ErrBadKey)
	case len(lines) > 1:
		return Key{}, fmt.Errorf("%w: found %d lines; give exactly one key, the one line of a .pub file", ErrBadKey, len(lines))
	}
	f := strings.Fields(lines[0])
	if err := checkType(f[0], lines[0]); err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if len(f) < 2 {
		return Key{}, fmt.Errorf("%w: the %s key has no base64 part", ErrBadKey, f[0])
	}
	k := Key{Type: f[0], Blob: f[1], Comment: strings.Join(f[2:], " ")}
	raw, err := base64.StdEncoding.Strict().DecodeString(k.Blob)
	if err != nil || base64.StdEncoding.EncodeToString(raw) != k.Blob {
		return Key{}, fmt.Errorf("%w: the base64 part of the %s key is damaged", ErrBadKey, k.Type)
	}
	pub, err := ssh.ParsePublicKey(raw)
	if err != nil {
		return Key{}, fmt.Errorf("%w: the %s key data is not a valid key (%s)", ErrBadKey, k.Type, strings.TrimPrefix(err.Error(), "ssh: "))
	}
	// The whole line once more through the authorized_keys parser, as
	// sshd will read it: it also checks the line's type against the key's.
	if _, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(k.Type + " " + k.Blob)); err != nil || len(opts) > 0 || pub.Type() != k.Type {
		return Key{}, fmt.Errorf("%w: the line says %s but the key data says %.40q", ErrBadKey, k.Type, pub.Type())
	}
	// sshd hands keys-command the key re-encoded; only a key stored in that
	// same form is found again.
	if !bytes.Equal(pub.Marshal(), raw) {
		return Key{}, fmt.Errorf("%w: the %s key data is not in its canonical encoding", ErrBadKey, k.Type)
	}
	if err := checkSize(pub); err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if err := checkComment(k.Comment); err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	k.Fingerprint = ssh.FingerprintSHA256(pub)
	return k, nil
}

// privateKeyMarkers begin the private key files ssh-keygen, OpenSSL and
// PuTTY write.
var privateKeyMarkers = []string{"PRIVATE KEY-----", "PuTTY-User-Key-File-", "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----"}

func isPrivateKey(text string) bool {
	for _, m := range privateKeyMarkers {
		if strings.Contains(text, m) {
			return true
		}
	}
	return false
}

// checkType refuses a key type gitmesh does not store, saying why: line
// is the whole line, read as authorized_keys to recognise options.
func checkType(typ, line string) error {
	if acceptedTypes[typ] {
		return nil
	}
	if strings.Contains(typ, "-cert-v0") {
		return fmt.Errorf("key type %.60q is not accepted: certificates are not; give the plain public key (%s)", typ, keyTypeList)
	}
	_, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err == nil && len(opts) > 0 || strings.ContainsAny(typ, `=,"`) {
		return fmt.Errorf("the line starts with options (%.40q); give the bare key as in a .pub file", typ)
	}
	return fmt.Errorf("key type %.40q is not accepted; use %s", typ, keyTypeList)
}

// checkSize refuses RSA keys under 1024 bits, which OpenSSH refuses too;
// the ssh package checks the sizes of the other types.
func checkSize(pub ssh.PublicKey) error {
	ck, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return nil
	}
	if r, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && r.N.BitLen() < 1024 {
		return fmt.Errorf("the RSA key is shorter than 1024 bits (%d)", r.N.BitLen())
	}
	return nil
}

// checkComment keeps the comment printable: it goes into authorized_keys
// lines and onto operators' terminals.
func checkComment(c string) error {
	if !utf8.ValidString(c) {
		return errors.New("the comment is not valid UTF-8")
	}
	for _, r := range c {
		if termsafe.Unsafe(r) {
			return errors.New("the comment holds a control character")
		}
	}
	if len(c) > 200 {
		return errors.New("the comment is longer than 200 bytes")
	}
	return nil
}

// StoredKey is a key gitmesh knows: a user's, or the cluster's when User
// is empty.
type StoredKey struct {
	Key
	User string
}

// Cluster reports whether this is the cluster's own key.
func (k StoredKey) Cluster() bool { return k.User == "" }

// AddKey stores k for user; user "" stores it as a cluster key, the key
// devices fetch from each other with. Several cluster keys may exist at once,
// so that the key can be replaced without downtime.
func AddKey(ctx context.Context, d *sql.DB, user string, k Key) error {
	var res sql.Result
	var err error
	if user == "" {
		res, err = d.ExecContext(ctx, `INSERT INTO ssh_keys (user_id, key_type, key_blob, comment, fingerprint)
			VALUES (NULL, $1, $2, $3, $4)`, k.Type, k.Blob, k.Comment, k.Fingerprint)
	} else {
		res, err = d.ExecContext(ctx, `INSERT INTO ssh_keys (user_id, key_type, key_blob, comment, fingerprint)
			SELECT id, $2, $3, $4, $5 FROM users WHERE name = $1`, user, k.Type, k.Blob, k.Comment, k.Fingerprint)
	}
	if IsUniqueViolation(err) {
		owner, _ := keyOwner(ctx, d, k.Blob)
		return fmt.Errorf("key %s %w (%s); remove it first with 'gitmesh key remove %s'", k.Fingerprint, ErrExists, owner, k.Fingerprint)
	}
	if err != nil {
		return fmt.Errorf("store key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return noUser(user)
	}
	return nil
}

func keyOwner(ctx context.Context, d *sql.DB, blob string) (string, error) {
	var user sql.NullString
	err := d.QueryRowContext(ctx, `SELECT u.name FROM ssh_keys k LEFT JOIN users u ON u.id = k.user_id
		WHERE k.key_blob = $1`, blob).Scan(&user)
	if !user.Valid {
		return "the cluster key", err
	}
	return "a key of user " + user.String, err
}

// RemoveKey forgets the key with this fingerprint ("SHA256:...").
func RemoveKey(ctx context.Context, d *sql.DB, fingerprint string) error {
	res, err := d.ExecContext(ctx, `DELETE FROM ssh_keys WHERE fingerprint = $1`, fingerprint)
	if err != nil {
		return fmt.Errorf("remove key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w key %s: 'gitmesh key list' shows the fingerprints", ErrUnknown, fingerprint)
	}
	return nil
}

// Keys lists every stored key, cluster keys first, then by user.
func Keys(ctx context.Context, d *sql.DB) ([]StoredKey, error) {
	rows, err := d.QueryContext(ctx, `SELECT COALESCE(u.name, ''), k.key_type, k.key_blob, k.comment, k.fingerprint
		FROM ssh_keys k LEFT JOIN users u ON u.id = k.user_id
		ORDER BY u.name NULLS FIRST, k.id`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []StoredKey
	for rows.Next() {
		var k StoredKey
		if err := rows.Scan(&k.User, &k.Type, &k.Blob, &k.Comment, &k.Fingerprint); err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// LookupKey finds the stored key whose type and base64 blob are exactly
// these, in one indexed query (key_blob is unique). ok is false for an
// unknown key.
func LookupKey(ctx context.Context, d *sql.DB, typ, blob string) (k StoredKey, ok bool, err error) {
	err = d.QueryRowContext(ctx, `SELECT COALESCE(u.name, ''), k.comment, k.fingerprint
		FROM ssh_keys k LEFT JOIN users u ON u.id = k.user_id
		WHERE k.key_blob = $1 AND k.key_type = $2`, blob, typ).Scan(&k.User, &k.Comment, &k.Fingerprint)
	if errors.Is(err, sql.ErrNoRows) {
		return StoredKey{}, false, nil
	}
	if err != nil {
		return StoredKey{}, false, fmt.Errorf("look up key: %w", err)
	}
	k.Type, k.Blob = typ, blob
	return k, true, nil
}

// ForcedCommand is the command sshd runs for a key: `BIN [--config FILE]
// serve USER`, or `serve --cluster` for the cluster key, quoted for the
// shell sshd runs it with.
func ForcedCommand(bin, config string, k StoredKey) string {
	args := []string{shellWord(bin)}
	if config != "" {
		args = append(args, "--config", shellWord(config))
	}
	args = append(args, "serve")
	if k.Cluster() {
		args = append(args, "--cluster")
	} else {
		args = append(args, shellWord(k.User))
	}
	return strings.Join(args, " ")
}

// AuthorizedLine is k's authorized_keys line: the forced command and
// restrict (no pty, no forwarding of any kind, no ~/.ssh/rc).
func AuthorizedLine(command string, k StoredKey) string {
	// sshd unescapes only \" inside a quoted option, left to right, so
	// escaping every " is enough; a newline cannot occur (see CheckPath).
	line := `command="` + strings.ReplaceAll(command, `"`, `\"`) + `",restrict ` + k.Type + " " + k.Blob
	if k.Comment != "" {
		line += " " + k.Comment
	}
	return line
}

// CheckPath refuses a path that cannot stand in an authorized_keys line.
func CheckPath(what, p string) error {
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("the %s path %q holds a control character and cannot go into authorized_keys", what, p)
		}
	}
	return nil
}

// shellWord quotes s for sh unless it is made of harmless characters only.
func shellWord(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:@", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
