package db

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"
)

func TestOpenRefusesTheMultiHostURLForm(t *testing.T) {
	for _, u := range []string{"postgres://u@h1:5432,h2:5432/db", "postgresql://u:pw@h1,h2/db?sslmode=disable"} {
		if _, err := Open(u, "test", time.Second); !errors.Is(err, ErrMultiHostURL) {
			t.Errorf("Open(%q) = %v, want ErrMultiHostURL", u, err)
		}
	}
	if !strings.Contains(ErrMultiHostURL.Error(), "host=h1,h2 port=p1,p2") {
		t.Errorf("the refusal does not show the key=value form: %v", ErrMultiHostURL)
	}
	for _, u := range []string{"postgres://u@h1:5432/db?options=a,b", "host=h1,h2 port=1,2 dbname=x", "postgres://u:p,w@h/db"} {
		if _, err := Open(u, "test", time.Second); err != nil {
			t.Errorf("Open(%q) = %v, want no error", u, err)
		}
	}
}

func TestClassifyNamesTheSettingOnlyBeforeTheDatabaseWasReached(t *testing.T) {
	refused := &DialError{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"refused", refused, "nothing accepts connections"},
		{"unknown host", &DialError{&net.DNSError{Err: "no such host", Name: "db.invalid", IsNotFound: true}}, "host name is unknown"},
		{"password", &pq.Error{Code: "28P01"}, "refused the password"},
		{"role", &pq.Error{Code: "28000"}, "refused the role"},
		{"database", &pq.Error{Code: "3D000"}, "no such database"},
	} {
		var se *SettingError
		err := classify(tt.err, false)
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "database_url") || IsUnavailable(err) {
			t.Errorf("%s, never reached: %v; want a setting error saying %q", tt.name, err, tt.want)
		}
		if err := classify(tt.err, true); errors.As(err, &se) {
			t.Errorf("%s, reached before: %v; want the driver's error", tt.name, err)
		}
	}
	if !IsUnavailable(classify(refused, true)) {
		t.Error("refused after the database was reached is not an outage")
	}
	standby := errors.New("pq: could not connect to any of the hosts:\nserver is in hot standby mode")
	for _, reached := range []bool{false, true} {
		if err := classify(standby, reached); !errors.Is(err, ErrNoPrimary) || !IsUnavailable(err) {
			t.Errorf("only standbys (reached %v): %v; want ErrNoPrimary, unavailable", reached, err)
		}
	}
}
