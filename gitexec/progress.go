package gitexec

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress passes the progress meter of a fetch from a peer on to the user
// who waits for it (git fetch --progress writes it to stderr, lines ended
// by \r or \n). Only git's own meter lines pass, never an error, path or
// URL, and at most one line a second.
type Progress struct {
	out    io.Writer
	prefix string
	every  time.Duration
	now    func() time.Time

	mu      sync.Mutex
	partial []byte    // the start of a line not yet ended
	last    time.Time // when a line was last written; zero: never
	pending string    // the newest line held back by the rate limit
}

// NewProgress writes meter lines to out, each after prefix.
func NewProgress(out io.Writer, prefix string) *Progress {
	return &Progress{out: out, prefix: prefix, every: time.Second, now: time.Now}
}

// Write takes git's stderr. It never fails: a user who went away must not
// stop the fetch.
func (p *Progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexAny(p.partial, "\r\n")
		if i < 0 {
			break
		}
		p.take(string(p.partial[:i]))
		p.partial = p.partial[i+1:]
	}
	if len(p.partial) > maxProgressLine {
		p.partial = p.partial[:0] // not a meter line
	}
	return len(b), nil
}

// Flush ends the fetch: the newest line held back is written if the rate
// allows it.
func (p *Progress) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.partial) > 0 {
		p.take(string(p.partial))
		p.partial = p.partial[:0]
	}
	if p.pending != "" && p.now().Sub(p.last) >= p.every {
		p.emit(p.pending)
	}
	p.pending = ""
}

func (p *Progress) take(raw string) {
	line, ok := meterLine(raw)
	if !ok {
		return
	}
	if !p.last.IsZero() && p.now().Sub(p.last) < p.every {
		p.pending = line
		return
	}
	p.emit(line)
}

func (p *Progress) emit(line string) {
	p.last = p.now()
	p.pending = ""
	io.WriteString(p.out, p.prefix+line+"\n")
}

// maxProgressLine bounds a meter line; git's are far shorter.
const maxProgressLine = 200

// meterLabels start the lines of git's progress meter, on either side of
// a fetch.
var meterLabels = []string{"Enumerating objects:", "Counting objects:", "Compressing objects:",
	"Receiving objects:", "Unpacking objects:", "Resolving deltas:", "Total ", "Checking objects:", "Checking connectivity:"}

// meterWords are the words a meter line may hold besides numbers and
// punctuation (units, rates, "done", delta reuse counts).
var meterWords = map[string]bool{"done": true, "delta": true, "reused": true, "pack-reused": true,
	"bytes": true, "KiB": true, "MiB": true, "GiB": true, "TiB": true, "s": true}

// meterLine returns raw, one line of a fetch's stderr, as the user may see
// it when it is a line of git's progress meter ("remote: " dropped, spaces
// collapsed): a label git writes, then only numbers, punctuation and
// meter words. Anything else (errors, paths, URLs, ssh's warnings) is not.
func meterLine(raw string) (string, bool) {
	s := strings.TrimSpace(raw)
	for {
		rest, ok := strings.CutPrefix(s, "remote:")
		if !ok {
			break
		}
		s = strings.TrimSpace(rest)
	}
	if s == "" || len(s) > maxProgressLine {
		return "", false
	}
	label := ""
	for _, l := range meterLabels {
		if strings.HasPrefix(s, l) {
			label = l
			break
		}
	}
	if label == "" {
		return "", false
	}
	fields := strings.Fields(s[len(label):])
	for _, f := range fields {
		if !meterToken(f) {
			return "", false
		}
	}
	return strings.TrimSpace(strings.TrimSpace(label) + " " + strings.Join(fields, " ")), true
}

// meterToken accepts "45%", "(450/1000),", "1.20", "MiB/s", "done.",
// "(delta", "0),": digits and punctuation around at most one meter word,
// optionally per second.
func meterToken(f string) bool {
	word := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9', strings.ContainsRune("%(),.|:", r):
			return -1
		}
		return r
	}, f)
	word = strings.TrimSuffix(word, "/s")
	word = strings.Trim(word, "/")
	return word == "" || meterWords[word]
}
