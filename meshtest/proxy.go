package meshtest

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy on loopback whose connections a test can cut, to
// play a network that drops PostgreSQL in the middle of a write.
type Proxy struct {
	Addr   string // host:port to connect to instead of the target
	target string
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	down   bool
	// trap, when set, cuts every connection (and sets down to trapDown) the
	// moment a client sends bytes containing it.
	trap     []byte
	trapDown bool
	trapped  chan struct{}
	stats    ProxyStats
}

// ProxyStats counts what clients did through a Proxy since ResetStats.
type ProxyStats struct {
	// Conns is the connections clients opened (refused ones too).
	Conns int
	// Bursts is the reads of client bytes, each forwarded as one write to
	// the server. A client that writes a message and waits for the answer
	// makes one burst per round trip, so this counts round trips (lib/pq
	// sends Parse, Bind, Describe, Execute and Sync in one write when
	// binary_parameters is on).
	Bursts int
}

// NewProxy forwards connections to target until the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.Cut() })
	return p
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.stats.Conns++
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	go func() { p.clientToServer(c, s); s.Close() }()
	io.Copy(c, s)
	c.Close()
}

func (p *Proxy) clientToServer(c, s net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			p.stats.Bursts++
			hit := p.trap != nil && bytes.Contains(buf[:n], p.trap)
			if hit {
				p.trap = nil
				p.down = p.trapDown
				close(p.trapped)
			}
			p.mu.Unlock()
			if hit {
				p.Cut()
				return
			}
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// CutOn arms a trap: when a client next sends bytes containing pattern,
// every connection is cut before they reach the server, and new ones are
// refused if down is true. The returned channel closes when it fires.
func (p *Proxy) CutOn(pattern string, down bool) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trap, p.trapDown, p.trapped = []byte(pattern), down, make(chan struct{})
	return p.trapped
}

// Cut closes every open connection.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// SetDown makes the proxy refuse (true) or accept (false) new connections.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// Stats returns the counts since the proxy started or ResetStats.
func (p *Proxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// ResetStats sets the counts to zero.
func (p *Proxy) ResetStats() {
	p.mu.Lock()
	p.stats = ProxyStats{}
	p.mu.Unlock()
}
