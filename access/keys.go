package access

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
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

// keyFields is how many length-prefixed fields follow the type name inside
// the blob of each key type gitmesh accepts. Certificates and the obsolete
// ssh-dss are not accepted.
var keyFields = map[string]int{
	"ssh-ed25519":                        1, // public key
	"ssh-rsa":                            2, // e, n
	"ecdsa-sha2-nistp256":                2, // curve, point
	"ecdsa-sha2-nistp384":                2,
	"ecdsa-sha2-nistp521":                2,
	"sk-ssh-ed25519@openssh.com":         2, // public key, application
	"sk-ecdsa-sha2-nistp256@openssh.com": 3, // curve, point, application
}

const keyTypeList = "ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521 or their sk- variants"

// ParseKey reads exactly one public key from text (blank lines and '#'
// comments aside): "TYPE BASE64 [COMMENT]", without authorized_keys options.
// The blob must be canonical base64 and name the same type as the line.
func ParseKey(text string) (Key, error) {
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
	n, ok := keyFields[f[0]]
	if !ok {
		if strings.ContainsAny(f[0], `=,"`) {
			return Key{}, fmt.Errorf("%w: the line starts with options (%.40q); give the bare key as in a .pub file", ErrBadKey, f[0])
		}
		return Key{}, fmt.Errorf("%w: key type %.40q is not accepted; use %s", ErrBadKey, f[0], keyTypeList)
	}
	if len(f) < 2 {
		return Key{}, fmt.Errorf("%w: the %s key has no base64 part", ErrBadKey, f[0])
	}
	k := Key{Type: f[0], Blob: f[1], Comment: strings.Join(f[2:], " ")}
	raw, err := base64.StdEncoding.DecodeString(k.Blob)
	if err != nil || base64.StdEncoding.EncodeToString(raw) != k.Blob {
		return Key{}, fmt.Errorf("%w: the base64 part of the %s key is damaged", ErrBadKey, k.Type)
	}
	if err := checkBlob(k.Type, n, raw); err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	for _, r := range k.Comment {
		if r < 0x20 || r == 0x7f {
			return Key{}, fmt.Errorf("%w: the comment holds a control character", ErrBadKey)
		}
	}
	if len(k.Comment) > 200 {
		return Key{}, fmt.Errorf("%w: the comment is longer than 200 bytes", ErrBadKey)
	}
	k.Fingerprint = Fingerprint(raw)
	return k, nil
}

// checkBlob checks the wire format: the type name, then n length-prefixed
// fields, nothing after.
func checkBlob(typ string, n int, raw []byte) error {
	fields := make([][]byte, 0, n+1)
	for len(raw) > 0 {
		if len(raw) < 4 {
			return errors.New("the key data is truncated")
		}
		l := binary.BigEndian.Uint32(raw)
		if uint64(l) > uint64(len(raw)-4) {
			return errors.New("the key data is truncated")
		}
		fields = append(fields, raw[4:4+l])
		raw = raw[4+l:]
	}
	if len(fields) == 0 || string(fields[0]) != typ {
		name := ""
		if len(fields) > 0 {
			name = string(fields[0])
		}
		return fmt.Errorf("the line says %s but the key data says %.40q", typ, name)
	}
	if len(fields) != n+1 {
		return fmt.Errorf("the %s key data has %d fields, want %d", typ, len(fields)-1, n)
	}
	switch {
	case typ == "ssh-ed25519" || typ == "sk-ssh-ed25519@openssh.com":
		if len(fields[1]) != 32 {
			return fmt.Errorf("an ed25519 key is 32 bytes, this one %d", len(fields[1]))
		}
	case strings.HasPrefix(typ, "ecdsa-sha2-") || strings.HasPrefix(typ, "sk-ecdsa-sha2-"):
		curve := strings.TrimSuffix(typ[strings.LastIndexByte(typ, '-')+1:], "@openssh.com")
		if !bytes.Equal(fields[1], []byte(curve)) {
			return fmt.Errorf("the %s key data names curve %.20q", typ, fields[1])
		}
	case typ == "ssh-rsa":
		if len(fields[2]) < 128 {
			return errors.New("the RSA key is shorter than 1024 bits")
		}
	}
	return nil
}

// Fingerprint is the SHA256 fingerprint of a decoded key blob, spelt as
// ssh-keygen -l and sshd's log spell it.
func Fingerprint(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
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
		return fmt.Errorf("%w user %s: add it first with 'gitmesh user add %s'", ErrUnknown, user, user)
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
