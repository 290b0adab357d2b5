package db

import (
	"bytes"
	"encoding/json"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// redacted stands where a secret was.
const redacted = "[REDACTED]"

var (
	// userinfo with a password in any URL: scheme://user:secret@
	urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^\s/@:"']*:)[^\s/@"']*@`)
	// password=secret in a key=value DSN, quoted or not
	dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'"]+)`)
)

// minSecret is the shortest password removed wherever it occurs: a
// shorter one would blot out ordinary words; the patterns above and the
// removal of the whole URL still apply.
const minSecret = 4

// Redact removes from s every database URL in dsns, their passwords (as
// written, decoded, and quoted as Go or JSON would quote them), and any
// URL password or password= setting. It is the one place gitmesh hides
// database secrets: every line to stderr and to the log passes here.
func Redact(s string, dsns ...string) string {
	for _, secret := range secrets(dsns) {
		s = strings.ReplaceAll(s, secret, redacted)
	}
	s = urlPassword.ReplaceAllString(s, "${1}"+redacted+"@")
	return dsnPassword.ReplaceAllString(s, "${1}"+redacted)
}

// secrets are the strings to remove, longest first.
func secrets(dsns []string) []string {
	var raw []string
	for _, d := range dsns {
		if d == "" {
			continue
		}
		raw = append(raw, d)
		for _, p := range passwords(d) {
			if len(p) < minSecret {
				continue
			}
			raw = append(raw, p)
			if dec, err := url.PathUnescape(p); err == nil && dec != p {
				raw = append(raw, dec)
			}
		}
	}
	var out []string
	for _, r := range raw {
		j, _ := json.Marshal(r)
		out = append(out, r, strconv.Quote(r)[1:len(strconv.Quote(r))-1], string(j[1:len(j)-1]))
	}
	// Longest first: the whole URL before the password inside it.
	for i := 1; i < len(out); i++ {
		for k := i; k > 0 && len(out[k]) > len(out[k-1]); k-- {
			out[k], out[k-1] = out[k-1], out[k]
		}
	}
	return out
}

// passwords finds the password in a URL (parsed by hand: it may not parse)
// or a key=value DSN, as written.
func passwords(dsn string) []string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		var out []string
		// The userinfo ends at the last @ of the whole rest, or of the
		// part before the query when an option holds an @.
		for _, r := range []string{rest, strings.SplitN(rest, "?", 2)[0]} {
			if at := strings.LastIndex(r, "@"); at >= 0 {
				if _, pw, ok := strings.Cut(r[:at], ":"); ok {
					out = append(out, pw)
				}
			}
		}
		return out
	}
	m := dsnPassword.FindStringSubmatch(dsn)
	if m == nil {
		return nil
	}
	return []string{strings.Trim(m[2], "'")}
}

// RedactWriter passes each write (one log line) through Redact.
func RedactWriter(w io.Writer, dsns ...string) io.Writer {
	return redactWriter{w: w, dsns: dsns}
}

type redactWriter struct {
	w    io.Writer
	dsns []string
}

func (r redactWriter) Write(p []byte) (int, error) {
	clean := Redact(string(p), r.dsns...)
	if _, err := io.Copy(r.w, bytes.NewBufferString(clean)); err != nil {
		return 0, err
	}
	return len(p), nil
}
