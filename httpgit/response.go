package httpgit

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Response is a CGI response on the web server's end of stdout: its
// header goes out with the first byte of the body, so that a refusal
// found before git starts can still choose the status.
type Response struct {
	mu          sync.Mutex
	out         io.Writer
	contentType string
	sent        bool
}

// NewResponse writes to out (the CGI's stdout).
func NewResponse(out io.Writer) *Response { return &Response{out: out} }

// noCache is git http-backend's own: nothing of a smart answer is cached.
const noCache = "Expires: Fri, 01 Jan 1980 00:00:00 GMT\r\nPragma: no-cache\r\nCache-Control: no-cache, max-age=0, must-revalidate\r\n"

// Start sends a 200 header with contentType now, unless one was sent.
func (r *Response) Start(contentType string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.contentType = contentType
	return r.startLocked()
}

func (r *Response) startLocked() error {
	if r.sent {
		return nil
	}
	r.sent = true
	_, err := fmt.Fprintf(r.out, "Status: 200 OK\r\nContent-Type: %s\r\n%s\r\n", r.contentType, noCache)
	return err
}

// Lazy sets the content type of a 200 answer sent with the first Write.
func (r *Response) Lazy(contentType string) {
	r.mu.Lock()
	r.contentType = contentType
	r.mu.Unlock()
}

// Write sends the header first if needed.
func (r *Response) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.startLocked(); err != nil {
		return 0, err
	}
	return r.out.Write(p)
}

// Passthrough is a writer for an answer made whole elsewhere (a holder's
// HTTP door, header included): from its first byte on, this response
// counts as sent.
func (r *Response) Passthrough() io.Writer { return passthrough{r} }

type passthrough struct{ r *Response }

func (p passthrough) Write(b []byte) (int, error) {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	p.r.sent = true
	return p.r.out.Write(b)
}

// Sent reports whether the header went out (a status can no longer be
// chosen).
func (r *Response) Sent() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent
}

// Fail answers status with msg as a text/plain body, which git shows as
// "remote: msg"; it does nothing once a header was sent (git's own
// answer then says what happened).
func (r *Response) Fail(status int, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent {
		return
	}
	r.sent = true
	var h strings.Builder
	fmt.Fprintf(&h, "Status: %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n%s", status, http.StatusText(status), noCache)
	if status == http.StatusUnauthorized {
		h.WriteString("WWW-Authenticate: Basic realm=\"gitmesh\", charset=\"UTF-8\"\r\n")
	}
	if status == http.StatusServiceUnavailable {
		h.WriteString("Retry-After: 10\r\n")
	}
	body := "gitmesh: " + strings.Join(strings.Fields(msg), " ") + "\n"
	fmt.Fprintf(&h, "Content-Length: %s\r\n\r\n%s", strconv.Itoa(len(body)), body)
	io.WriteString(r.out, h.String())
}

// FailInBand answers a push refused before git started with the
// sentence in git's side band (200, as git's own errors over HTTP): git
// shows a side band but never the body of a failed POST. It does nothing
// once a header was sent, and reports whether it answered.
func (r *Response) FailInBand(contentType string, told []string, msg string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent {
		return false
	}
	r.contentType = contentType
	if err := r.startLocked(); err != nil {
		return true
	}
	var b strings.Builder
	for i, l := range append(told, msg) {
		line := "gitmesh: " + strings.Join(strings.Fields(l), " ") + "\n"
		if len(line) > maxTold {
			line = line[:maxTold-1] + "\n"
		}
		band := 2
		if i == len(told) {
			band = 3 // the refusal: git stops with it
		}
		fmt.Fprintf(&b, "%04x%c%s", len(line)+5, band, line)
	}
	io.WriteString(r.out, b.String()+"0000")
	return true
}

// sideband passes receive-pack's answer through, adding gitmesh's own
// lines for the user ("stored on 2 of 3 devices") as side-band 2 packets
// between git's packets, which git prints as "remote: ..." just as over
// SSH's stderr. Only for a client that asked for a side band; lines told
// after git's closing flush are dropped (to the log).
type sideband struct {
	mu      sync.Mutex
	out     io.Writer
	on      bool // the client asked for side-band(-64k)
	raw     bool // not pkt-lines after all: pass everything through
	ended   bool // git sent its closing flush
	hdr     []byte
	need    int
	pending []string
}

// maxTold bounds one told line (a side-band packet holds 65515 bytes).
const maxTold = 1000

// Tell queues one line for the user; it reports whether it can still
// reach them.
func (s *sideband) Tell(line string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.on || s.ended || s.raw || len(s.pending) > 100 {
		return false
	}
	if len(line) > maxTold {
		line = line[:maxTold]
	}
	s.pending = append(s.pending, line)
	return true
}

func (s *sideband) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		if s.raw || !s.on || s.ended {
			if _, err := s.out.Write(p); err != nil {
				return 0, err
			}
			return n, nil
		}
		if s.need > 0 {
			k := min(s.need, len(p))
			if _, err := s.out.Write(p[:k]); err != nil {
				return 0, err
			}
			s.need -= k
			p = p[k:]
			continue
		}
		k := min(4-len(s.hdr), len(p))
		s.hdr = append(s.hdr, p[:k]...)
		p = p[k:]
		if len(s.hdr) < 4 {
			break
		}
		l, err := strconv.ParseUint(string(s.hdr), 16, 16)
		if err != nil || l > 0 && l < 4 && l != 1 && l != 2 {
			s.raw = true
		} else {
			if err := s.flushPending(); err != nil {
				return 0, err
			}
			s.ended = l == 0
			s.need = max(int(l)-4, 0)
		}
		if _, err := s.out.Write(s.hdr); err != nil {
			return 0, err
		}
		s.hdr = s.hdr[:0]
	}
	return n, nil
}

// takePending returns the queued lines and forgets them.
func (s *sideband) takePending() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending
	s.pending = nil
	return p
}

// flushPending writes the queued lines as side-band 2 packets.
func (s *sideband) flushPending() error {
	for _, line := range s.pending {
		msg := "gitmesh: " + line + "\n"
		if _, err := fmt.Fprintf(s.out, "%04x\x02%s", len(msg)+5, msg); err != nil {
			return err
		}
	}
	s.pending = nil
	return nil
}
