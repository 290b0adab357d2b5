// Package guard bounds one push while it holds the write lock: the
// client's silence (push_idle_timeout) and the push's whole time
// (push_timeout). It stands between the client and receive-pack, copying
// the client's bytes through a pipe so that it sees when they stop, and
// kills receive-pack when a bound is passed, except while the push is
// being recorded: from the moment serve has the push's commands until it
// has answered them, only the recording's own bounds apply.
// It knows bytes and time, not git's protocol or the database.
package guard

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// TimeoutError says which bound stopped the push.
type TimeoutError struct {
	Idle  bool          // the client sent nothing for Limit; else the push took Limit
	Limit time.Duration // the setting's value
	// Answered: the push's commands had been answered (recorded or
	// refused) before it was stopped.
	Answered bool
}

func (e *TimeoutError) Error() string {
	if e.Idle {
		return fmt.Sprintf("the client sent nothing for %s (push_idle_timeout)", e.Limit)
	}
	return fmt.Sprintf("the push took longer than %s (push_timeout)", e.Limit)
}

// ErrTimeout matches every TimeoutError.
var ErrTimeout = errors.New("push stopped at its time limit")

// Is lets errors.Is(err, ErrTimeout) work.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

type phase int

const (
	receiving phase = iota // receive-pack reads the client's commands and pack
	recording              // serve has the commands: never killed here
	answered               // the commands are answered; git reports and runs post-receive
	stopped
)

// Guard watches one push. A zero bound is no bound.
type Guard struct {
	idle, total time.Duration
	deadline    time.Time // push_timeout's end; after the answer, at least push_idle_timeout away
	mu          sync.Mutex
	phase       phase
	waiting     time.Time // since when a read from the client is pending; zero when none
	fired       *TimeoutError
	kill        func()
	done        chan struct{}
	received    atomic.Int64 // bytes copied from the client
}

// Received is how many bytes the client has sent so far.
func (g *Guard) Received() int64 { return g.received.Load() }

// New starts copying client into a pipe and returns the guard and the
// pipe's read end, for receive-pack's stdin (the caller closes it once
// receive-pack has started). The clocks start with Watch.
func New(client io.Reader, idle, total time.Duration) (*Guard, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("pipe for the client: %w", err)
	}
	g := &Guard{idle: idle, total: total, done: make(chan struct{})}
	go g.copy(client, w)
	return g, r, nil
}

// copy feeds receive-pack. Only time spent waiting for the client counts
// as silence: a receive-pack slow to read is not the client's doing.
func (g *Guard) copy(client io.Reader, w *os.File) {
	defer w.Close() // receive-pack sees the client's EOF
	buf := make([]byte, 64<<10)
	for {
		g.mu.Lock()
		g.waiting = time.Now()
		g.mu.Unlock()
		n, err := client.Read(buf)
		g.mu.Lock()
		g.waiting = time.Time{}
		g.mu.Unlock()
		if n > 0 {
			g.received.Add(int64(n))
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // receive-pack is gone
			}
		}
		if err != nil {
			return
		}
	}
}

// Watch starts the clocks; kill is how a bound ends receive-pack.
func (g *Guard) Watch(kill func()) {
	g.mu.Lock()
	g.kill, g.deadline = kill, time.Now().Add(g.total)
	g.mu.Unlock()
	shortest := max(g.idle, g.total)
	if g.idle > 0 {
		shortest = min(shortest, g.idle)
	}
	if shortest <= 0 {
		return // no bounds
	}
	tick := max(min(shortest/20, time.Second), 10*time.Millisecond)
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-g.done:
				return
			case now := <-t.C:
				g.check(now)
			}
		}
	}()
}

func (g *Guard) check(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var e *TimeoutError
	switch {
	case g.idle > 0 && g.phase == receiving && !g.waiting.IsZero() && now.Sub(g.waiting) >= g.idle:
		e = &TimeoutError{Idle: true, Limit: g.idle}
	case g.total > 0 && (g.phase == receiving || g.phase == answered) && !now.Before(g.deadline):
		e = &TimeoutError{Limit: g.total, Answered: g.phase == answered}
	default:
		return
	}
	g.fired, g.phase = e, stopped
	g.kill()
}

// Recording tells the guard serve has the push's commands: no bound
// kills receive-pack until Answered. It reports false when a bound has
// already fired (the push is being stopped; refuse it).
func (g *Guard) Recording() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.phase == stopped {
		return false
	}
	g.phase = recording
	return true
}

// Answered tells the guard the commands are answered: push_timeout
// applies again (to a client that will not read its report, say), but
// git has at least push_idle_timeout left to report and run post-receive,
// so a long push that was recorded is not cut off at its answer.
func (g *Guard) Answered() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.phase == recording {
		g.phase = answered
		if least := time.Now().Add(g.idle); g.deadline.Before(least) {
			g.deadline = least
		}
	}
}

// Deadline is when push_timeout ends (zero: no bound, or not watching
// yet). What serve runs while it records, the repository's update hook,
// ends there too.
func (g *Guard) Deadline() time.Time {
	if g == nil || g.total <= 0 {
		return time.Time{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.deadline
}

// Stop ends the watch and returns the bound that fired, if one did.
func (g *Guard) Stop() *TimeoutError {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.phase != stopped {
		g.phase = stopped
	}
	select {
	case <-g.done:
	default:
		close(g.done)
	}
	return g.fired
}

// StoppedError is what the pusher hears: which bound stopped the push,
// and what became of it.
type StoppedError struct {
	*TimeoutError
	Done string // "nothing was changed; push again", or what was recorded
}

func (e *StoppedError) Error() string {
	return "push stopped: " + e.TimeoutError.Error() + "; " + e.Done
}

// Unwrap gives the TimeoutError.
func (e *StoppedError) Unwrap() error { return e.TimeoutError }
