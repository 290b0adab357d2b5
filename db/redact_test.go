package db

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRedactRemovesEveryFormOfThePassword(t *testing.T) {
	for _, tt := range []struct{ dsn, secret string }{
		{"postgres://gitmesh:s3cr%zzet@db.example:5432/gitmesh?sslmode=disable", "s3cr%zzet"},
		{"postgres://gitmesh:p%25ss%40word@db.example/gitmesh", "p%ss@word"},
		{"postgres://gitmesh:plainpassword@db.example/gitmesh", "plainpassword"},
		{"host=/run/postgresql user=git password='with space' dbname=x", "with space"},
		{"host=db password=S3cret\"quote dbname=x", `S3cret"quote`},
	} {
		lines := []string{
			"config: " + tt.dsn,
			fmt.Sprintf("parse %q: invalid URL escape", tt.dsn),
			"the password is " + tt.secret + " indeed",
			fmt.Sprintf("quoted %q", tt.secret),
		}
		for _, l := range lines {
			got := Redact(l, tt.dsn)
			if strings.Contains(got, tt.secret) || strings.Contains(got, strings.Trim(fmt.Sprintf("%q", tt.secret), `"`)) {
				t.Errorf("Redact(%q) = %q still holds %q", l, got, tt.secret)
			}
		}
		// A JSON log line, through the writer.
		var buf bytes.Buffer
		line, _ := json.Marshal(map[string]string{"error": "connect " + tt.dsn + " with " + tt.secret})
		if _, err := RedactWriter(&buf, tt.dsn).Write(line); err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(tt.secret)
		if strings.Contains(buf.String(), tt.secret) || strings.Contains(buf.String(), string(j[1:len(j)-1])) {
			t.Errorf("log line %s still holds the secret", buf.String())
		}
	}
	// Passwords of URLs gitmesh was not given are removed too.
	if got := Redact("dial postgres://u:hunter2@h/x and password=hunter3 now"); strings.Contains(got, "hunter") {
		t.Errorf("Redact left a password: %q", got)
	}
	if got := Redact("gitmesh: nothing to hide here", "postgres://u:pw@h/db"); got != "gitmesh: nothing to hide here" {
		t.Errorf("Redact changed an innocent line: %q", got)
	}
}

func TestOpenNeverQuotesABadURL(t *testing.T) {
	for _, dsn := range []string{"postgres://u:ab%zzcd@h/db", "postgres://u:pa ss@h:notaport/db", "host=h password='unterminated"} {
		_, err := Open(dsn, "test", time.Second)
		if !errors.Is(err, ErrBadURL) {
			t.Fatalf("Open(%q) = %v, want ErrBadURL", dsn, err)
		}
		if strings.Contains(err.Error(), "ab%zz") || strings.Contains(err.Error(), "pa ss") || strings.Contains(err.Error(), "unterminated") {
			t.Errorf("Open's error quotes the URL: %v", err)
		}
	}
}

// A URL that does not parse is told what is wrong with it, not blamed on
// the password's percent-encoding, and never quoted.
func TestOpenSaysWhatIsWrongWithABadURL(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"postgres://gitmesh:s3cret@127.0.0.1:notaport/gitmesh", "the port after the host is not a number from 1 to 65535: write postgres://USER:PASSWORD@HOST:5432/DATABASE"},
		{"postgres://gitmesh:s3cret@[::1]:99999/gitmesh", "the port after the host is not a number"},
		{"mysql://gitmesh:s3cret@127.0.0.1:3306/gitmesh", "it is a mysql:// URL, and gitmesh needs PostgreSQL: write postgres://USER:PASSWORD@HOST:5432/DATABASE"},
		{"postgres://gitmesh:s3%zzcret@127.0.0.1:5432/gitmesh", "percent-encode the special characters of the password"},
		{"postgres://gitmesh:s3/cret@127.0.0.1:5432/gitmesh", "percent-encode the special characters of the password"},
	} {
		_, err := Open(tt.url, "test", time.Second)
		if !errors.Is(err, ErrBadURL) {
			t.Fatalf("Open(%q) = %v, want ErrBadURL", tt.url, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%q) = %q, want it to say %q", tt.url, err, tt.want)
		}
		if strings.Contains(err.Error(), "cret") || strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("Open(%q)'s error quotes the URL: %v", tt.url, err)
		}
	}
}
