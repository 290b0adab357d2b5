package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Tokens are users' passwords for HTTP: 32 random bytes, shown once,
// stored as their sha256 only. A fast hash is enough for 256 random bits
// (no guess list can beat searching the whole space), and it is checked
// on every HTTP request.

// tokenPrefix marks gitmesh's tokens, so a leaked one is recognisable.
const tokenPrefix = "gm_"

// Token is one stored token, without the secret.
type Token struct {
	ID       int
	User     string
	Created  time.Time
	Expires  *time.Time
	LastUsed *time.Time
}

// ErrNoToken: no token with that id.
var ErrNoToken = errors.New("no such token")

func tokenHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// AddToken makes a token for user, valid for ttl (0: until removed), and
// returns its id and the secret, which is stored nowhere.
func AddToken(ctx context.Context, d *sql.DB, user string, ttl time.Duration) (int, string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return 0, "", fmt.Errorf("token: %w", err)
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	var expires *time.Time
	if ttl > 0 {
		t := time.Now().Add(ttl)
		expires = &t
	}
	var id int
	err := d.QueryRowContext(ctx, `
INSERT INTO tokens (user_id, hash, expires_at)
SELECT id, $2, $3 FROM users WHERE name = $1
RETURNING id`, user, tokenHash(secret), expires).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", fmt.Errorf("%w user %q: no such user; add it with 'gitmesh user add %s'", ErrInvalid, user, user)
	}
	if err != nil {
		return 0, "", fmt.Errorf("add token for %s: %w", user, err)
	}
	return id, secret, nil
}

// Tokens lists every token, by user.
func Tokens(ctx context.Context, d *sql.DB) ([]Token, error) {
	rows, err := d.QueryContext(ctx, `
SELECT t.id, u.name, t.created_at, t.expires_at, t.last_used
FROM tokens t JOIN users u ON u.id = t.user_id ORDER BY u.name, t.id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		if err := rows.Scan(&t.ID, &t.User, &t.Created, &t.Expires, &t.LastUsed); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RemoveToken forgets token id: it stops working at once.
func RemoveToken(ctx context.Context, d *sql.DB, id int) error {
	res, err := d.ExecContext(ctx, `DELETE FROM tokens WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("remove token %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w %d; 'gitmesh token list' shows the ids", ErrNoToken, id)
	}
	return nil
}

// CheckToken returns the user whose unexpired token secret is, and
// whether there is one; user must name its owner (Basic credentials carry
// both), so a token only ever works for the user it was made for.
func CheckToken(ctx context.Context, d *sql.DB, user, secret string) (bool, error) {
	if !strings.HasPrefix(secret, tokenPrefix) || len(secret) > 100 {
		return false, nil
	}
	var id int
	err := d.QueryRowContext(ctx, `
UPDATE tokens t SET last_used = now()
FROM users u
WHERE u.id = t.user_id AND t.hash = $1 AND u.name = $2
  AND (t.expires_at IS NULL OR t.expires_at > now())
RETURNING t.id`, tokenHash(secret), user).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check token: %w", err)
	}
	return true, nil
}
