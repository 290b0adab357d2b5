package gitexec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMeterLinePassesOnlyGitsMeter(t *testing.T) {
	tests := []struct {
		raw, want string // want "" when the line must not pass
	}{
		{"remote: Enumerating objects: 6, done.        ", "Enumerating objects: 6, done."},
		{"remote: Counting objects:  16% (1/6)        ", "Counting objects: 16% (1/6)"},
		{"remote: Compressing objects: 100% (2/2), done.", "Compressing objects: 100% (2/2), done."},
		{"Receiving objects:  45% (450/1000), 1.20 MiB | 1.00 MiB/s", "Receiving objects: 45% (450/1000), 1.20 MiB | 1.00 MiB/s"},
		{"Receiving objects: 100% (6/6), 512 bytes | 512.00 KiB/s, done.", "Receiving objects: 100% (6/6), 512 bytes | 512.00 KiB/s, done."},
		{"remote: Total 6 (delta 0), reused 0 (delta 0), pack-reused 0", "Total 6 (delta 0), reused 0 (delta 0), pack-reused 0"},
		{"Resolving deltas: 100% (3/3), done.", "Resolving deltas: 100% (3/3), done."},
		{"Unpacking objects:  40% (2/5), 8.00 MiB | 2.10 MiB/s", "Unpacking objects: 40% (2/5), 8.00 MiB | 2.10 MiB/s"},
		{" * [new ref]         main       -> refs/gitmesh/stage/heads/main", ""},
		{"fatal: '/srv/git/team/app.git' does not appear to be a git repository", ""},
		{"From /srv/git/b/team/app.git", ""},
		{"From ssh://git@10.0.0.2:2222/team/app", ""},
		{"Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts.", ""},
		{"remote: error: object file /srv/git/objects/ab/cd is empty", ""},
		{"remote: Counting objects: /srv/git/secret", ""},
		{"Receiving objects: 45% (450/1000), 1.20 MiB | ssh://host/path", ""},
		{"Total 3 /home/git/x", ""},
		{"ssh: connect to host 10.0.0.2 port 22: Connection refused", ""},
		{"", ""},
		{"Receiving objects: " + strings.Repeat("1", 300), ""},
	}
	for _, tt := range tests {
		got, ok := meterLine(tt.raw)
		if ok != (tt.want != "") || got != tt.want {
			t.Errorf("meterLine(%q) = %q, %v; want %q", tt.raw, got, ok, tt.want)
		}
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestProgress(out *strings.Builder) (*Progress, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := NewProgress(out, "gitmesh: catching up: ")
	p.now = clock.now
	return p, clock
}

func TestProgressAtMostOneLineASecond(t *testing.T) {
	var out strings.Builder
	p, clock := newTestProgress(&out)
	// git's \r updates, split across writes anywhere.
	p.Write([]byte("remote: Enumerating objects: 6, done.\nremote: Counting obj"))
	p.Write([]byte("ects:  16% (1/6)   \rremote: Counting objects:  50% (3/6)   \r"))
	clock.advance(400 * time.Millisecond)
	p.Write([]byte("fatal: '/srv/git/x' is not a repository\n"))
	p.Write([]byte("Receiving objects:  10% (1/10)\r"))
	clock.advance(700 * time.Millisecond)
	p.Write([]byte("Receiving objects:  60% (6/10)\r"))
	p.Write([]byte("Receiving objects: 100% (10/10), done.\n"))
	clock.advance(2 * time.Second)
	p.Flush()
	want := "gitmesh: catching up: Enumerating objects: 6, done.\n" +
		"gitmesh: catching up: Receiving objects: 60% (6/10)\n" +
		"gitmesh: catching up: Receiving objects: 100% (10/10), done.\n"
	if out.String() != want {
		t.Fatalf("progress wrote\n%s\nwant\n%s", out.String(), want)
	}
}

func TestProgressFlushKeepsTheRate(t *testing.T) {
	var out strings.Builder
	p, clock := newTestProgress(&out)
	p.Write([]byte("Receiving objects:  10% (1/10)\r"))
	clock.advance(100 * time.Millisecond)
	p.Write([]byte("Receiving objects: 100% (10/10), done."))
	p.Flush() // within the second: held back
	if want := "gitmesh: catching up: Receiving objects: 10% (1/10)\n"; out.String() != want {
		t.Fatalf("progress wrote %q, want %q", out.String(), want)
	}
}

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// A user who hung up must not fail the fetch that git's stderr feeds.
func TestProgressNeverFailsItsWriter(t *testing.T) {
	p := NewProgress(brokenWriter{}, "x: ")
	if n, err := p.Write([]byte("Receiving objects: 1% (1/100)\n")); n != 30 || err != nil {
		t.Fatalf("Write = %d, %v; want 30, nil", n, err)
	}
}

func FuzzMeterLine(f *testing.F) {
	for _, s := range []string{"remote: Counting objects:  16% (1/6)", "Receiving objects: 1.2 MiB/s, done.",
		"Total 3 (delta 0), reused 0 (delta 0), pack-reused 0", "From /srv/git/app.git", "remote: remote: Total /x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		line, ok := meterLine(raw)
		if !ok {
			return
		}
		if strings.ContainsAny(line, "\r\n\x00\x1b'\"@~\\") || strings.Contains(line, "://") || strings.Contains(line, "remote:") {
			t.Fatalf("meterLine(%q) passed %q", raw, line)
		}
		labelled := false
		for _, l := range meterLabels {
			labelled = labelled || strings.HasPrefix(line, strings.TrimSpace(l))
		}
		if !labelled {
			t.Fatalf("meterLine(%q) = %q has no meter label", raw, line)
		}
	})
}
