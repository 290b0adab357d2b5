package guard

import (
	"errors"
	"io"
	"testing"
	"time"
)

// killed is a kill func that reports its call.
func killed() (func(), <-chan struct{}) {
	ch := make(chan struct{})
	return func() { close(ch) }, ch
}

// waitKilled waits for the kill func's call, for at most ten seconds.
func waitKilled(t *testing.T, dead <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-dead:
	case <-time.After(10 * time.Second):
		t.Fatalf("receive-pack was not killed after 10s: %s", what)
	}
}

func TestBytesPassThroughAndEOFFollows(t *testing.T) {
	cr, cw := io.Pipe()
	g, stdin, err := New(cr, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	kill, _ := killed()
	g.Watch(kill)
	go func() {
		cw.Write([]byte("0000PACK"))
		cw.Write([]byte("rest"))
		cw.Close()
	}()
	got, err := io.ReadAll(stdin)
	if err != nil || string(got) != "0000PACKrest" {
		t.Fatalf("receive-pack read %q, %v; want the client's bytes then EOF", got, err)
	}
	if e := g.Stop(); e != nil {
		t.Fatalf("Stop() = %v after a client that finished", e)
	}
}

func TestASilentClientIsStoppedAtTheIdleBound(t *testing.T) {
	cr, cw := io.Pipe()
	defer cw.Close()
	g, stdin, err := New(cr, 50*time.Millisecond, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	kill, dead := killed()
	g.Watch(kill)
	cw.Write([]byte("half a pack")) // then nothing
	waitKilled(t, dead, "a silent client, push_idle_timeout 50ms")
	if g.Recording() {
		t.Error("Recording() = true after the bound fired; the push must be refused")
	}
	e := g.Stop()
	if e == nil || !e.Idle || e.Answered || !errors.Is(e, ErrTimeout) {
		t.Fatalf("Stop() = %+v, want an idle TimeoutError", e)
	}
	if got := (&StoppedError{TimeoutError: e, Done: "nothing was changed; push again"}).Error(); got !=
		"push stopped: the client sent nothing for 50ms (push_idle_timeout); nothing was changed; push again" {
		t.Errorf("message %q", got)
	}
}

func TestRecordingIsNeverStoppedAndTheTotalBoundResumesAfter(t *testing.T) {
	cr, cw := io.Pipe()
	defer cw.Close()
	g, stdin, err := New(cr, 20*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	kill, dead := killed()
	// Recording before the clocks start: on a loaded machine 20ms may
	// pass between Watch and Recording.
	if !g.Recording() {
		t.Fatal("Recording() = false before any bound")
	}
	g.Watch(kill)
	// Recording outlasts both bounds; the client is silent all along.
	time.Sleep(300 * time.Millisecond)
	select {
	case <-dead:
		t.Fatal("receive-pack was killed while the push was being recorded")
	default:
	}
	g.Answered()
	// push_timeout has long passed: it fires once push_idle_timeout more has.
	waitKilled(t, dead, "push_timeout after the answer")
	e := g.Stop()
	if e == nil || e.Idle || !e.Answered {
		t.Fatalf("Stop() = %+v, want push_timeout after the answer", e)
	}
}

func TestZeroBoundsNeverFire(t *testing.T) {
	cr, cw := io.Pipe()
	defer cw.Close()
	g, stdin, err := New(cr, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	g.Watch(func() { t.Error("killed without bounds") })
	time.Sleep(50 * time.Millisecond)
	if e := g.Stop(); e != nil {
		t.Fatalf("Stop() = %v without bounds", e)
	}
}
