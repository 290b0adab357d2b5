package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"gitmesh/meshtest"
)

func TestMain(m *testing.M) { meshtest.Main(m) }

func TestKeys(t *testing.T) {
	ids := []int32{1, 2, 3, 7, 1000, 1<<31 - 1}
	seen := map[Key]string{}
	note := func(k Key, what string) {
		t.Helper()
		if prev, ok := seen[k]; ok {
			t.Errorf("%s and %s share the key %+v", prev, what, k)
		}
		seen[k] = what
	}
	for _, repo := range ids {
		w := Write(repo)
		note(w, "Write("+itoa(repo)+")")
		if got := w.Describe(); got != "write lock" {
			t.Errorf("Write(%d).Describe() = %q, want write lock", repo, got)
		}
		for _, dev := range ids {
			r := Read(repo, dev)
			note(r, "Read("+itoa(repo)+", "+itoa(dev)+")")
			if r == w {
				t.Errorf("Read(%d, %d) == Write(%d)", repo, dev, repo)
			}
			if got := r.Describe(); got != "read lock" {
				t.Errorf("Read(%d, %d).Describe() = %q, want read lock", repo, dev, got)
			}
		}
	}
	// The write class is the constant it claims to be: "gmW\0".
	if got := fmt.Sprintf("%c%c%c%c", writeClass>>24&0xff, writeClass>>16&0xff, writeClass>>8&0xff, writeClass&0xff); got != "gmW\x00" {
		t.Errorf("write class spells %q, want gmW", got)
	}
}

func itoa(i int32) string { return fmt.Sprint(i) }

func TestTimeoutError(t *testing.T) {
	e := &TimeoutError{Key: Write(3), Waited: 1500*time.Millisecond + 400*time.Microsecond}
	if got, want := e.Error(), "write lock not acquired after 1.5s"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var err error = e
	if !errors.Is(err, ErrTimeout) {
		t.Error("errors.Is(TimeoutError, ErrTimeout) = false")
	}
	e = &TimeoutError{Key: Read(3, 1), Waited: time.Minute}
	if got, want := e.Error(), "read lock not acquired after 1m0s"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// database is a fresh database of the test server.
func database(t *testing.T) string {
	t.Helper()
	u, err := meshtest.Server().NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// session opens a pool on dbURL with application_name app and takes one
// dedicated connection from it, as gitmesh does while it holds a lock.
func session(t *testing.T, dbURL, app string) *sql.Conn {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	d, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c, err := d.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func backendPID(t *testing.T, c *sql.Conn) int {
	t.Helper()
	var pid int
	if err := c.QueryRowContext(context.Background(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

func lockTimeout(t *testing.T, c *sql.Conn) string {
	t.Helper()
	var v string
	if err := c.QueryRowContext(context.Background(), `SHOW lock_timeout`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// notes records the calls of an Acquire's notify.
type notes struct {
	mu      sync.Mutex
	holders []*Holder
}

func (n *notes) notify(h *Holder) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.holders = append(n.holders, h)
}

func (n *notes) calls() []*Holder {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Holder(nil), n.holders...)
}

func TestAcquireFreeLock(t *testing.T) {
	ctx := context.Background()
	dbURL := database(t)
	const app = "gitmesh push alice 1 team/app"
	c := session(t, dbURL, app)
	other := session(t, dbURL, "observer")
	for _, key := range []Key{Write(1), Read(1, 1), Read(1, 2)} {
		t.Run(fmt.Sprintf("%s %d,%d", key.Describe(), key.Class, key.Obj), func(t *testing.T) {
			var n notes
			start := time.Now()
			if err := Acquire(ctx, c, key, 5*time.Second, n.notify); err != nil {
				t.Fatalf("Acquire(free %+v): %v", key, err)
			}
			if d := time.Since(start); d > NotifyAfter {
				t.Errorf("Acquire of a free lock took %s", d)
			}
			if len(n.calls()) != 0 {
				t.Errorf("notify called for a free lock: %v", n.calls())
			}
			h, err := HolderOf(ctx, other, key)
			if err != nil {
				t.Fatalf("HolderOf: %v", err)
			}
			if h == nil || h.Application != app || h.PID != backendPID(t, c) {
				t.Errorf("HolderOf(%+v) = %+v, want %q (backend %d)", key, h, app, backendPID(t, c))
			}
			if err := Release(ctx, c, key); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if h, err := HolderOf(ctx, other, key); err != nil || h != nil {
				t.Errorf("HolderOf after Release = %+v, %v; want nil, nil", h, err)
			}
		})
	}
}

func TestAcquireTimesOutThenSucceeds(t *testing.T) {
	ctx := context.Background()
	dbURL := database(t)
	const holderApp = "gitmesh push alice 4242 team/app"
	holder := session(t, dbURL, holderApp)
	waiter := session(t, dbURL, "gitmesh push bob 4343 team/app")
	key := Write(7)
	if err := Acquire(ctx, holder, key, time.Second, nil); err != nil {
		t.Fatalf("holder Acquire: %v", err)
	}
	holderPID := backendPID(t, holder)

	var n notes
	const limit = 1500 * time.Millisecond
	start := time.Now()
	err := Acquire(ctx, waiter, key, limit, n.notify)
	waited := time.Since(start)

	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("Acquire of a held lock = %v, want a *TimeoutError", err)
	}
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("errors.Is(%v, ErrTimeout) = false", err)
	}
	if waited < limit || waited > limit+3*time.Second {
		t.Errorf("Acquire gave up after %s, want about %s", waited, limit)
	}
	if te.Key != key || te.Waited < limit || te.Waited > waited {
		t.Errorf("TimeoutError = %+v, want key %+v and a wait between %s and %s", te, key, limit, waited)
	}
	if te.Holder == nil || te.Holder.Application != holderApp || te.Holder.PID != holderPID {
		t.Errorf("TimeoutError.Holder = %+v, want %q (backend %d)", te.Holder, holderApp, holderPID)
	}
	calls := n.calls()
	if len(calls) != 1 {
		t.Fatalf("notify called %d times, want once: %+v", len(calls), calls)
	}
	if h := calls[0]; h == nil || h.Application != holderApp || h.PID != holderPID {
		t.Errorf("notify(%+v), want holder %q (backend %d)", h, holderApp, holderPID)
	}
	if v := lockTimeout(t, waiter); v != "0" {
		t.Errorf("lock_timeout after the wait = %q, want it reset to 0", v)
	}

	// Once the holder lets go, the waiter gets the lock, and the former
	// holder is the one left out.
	if err := Release(ctx, holder, key); err != nil {
		t.Fatalf("holder Release: %v", err)
	}
	if err := Acquire(ctx, waiter, key, limit, nil); err != nil {
		t.Fatalf("Acquire after the holder released: %v", err)
	}
	err = Acquire(ctx, holder, key, 200*time.Millisecond, nil)
	if !errors.As(err, &te) || te.Holder == nil || te.Holder.PID != backendPID(t, waiter) {
		t.Errorf("former holder's Acquire = %v (holder %+v), want a TimeoutError naming the waiter", err, te)
	}
	if err := Release(ctx, waiter, key); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := Acquire(ctx, holder, key, 200*time.Millisecond, nil); err != nil {
		t.Errorf("Acquire after Release: %v", err)
	}
}

func TestAcquireWaitsForRelease(t *testing.T) {
	ctx := context.Background()
	dbURL := database(t)
	holder := session(t, dbURL, "gitmesh fetch a 1 team/app")
	waiter := session(t, dbURL, "gitmesh fetch a 2 team/app")
	key := Read(3, 2)
	if err := Acquire(ctx, holder, key, time.Second, nil); err != nil {
		t.Fatalf("holder Acquire: %v", err)
	}
	// The holder lets go once the waiter has been told who holds the lock
	// (after NotifyAfter), not after a sleep.
	var n notes
	told := make(chan struct{}, 1)
	notify := func(h *Holder) {
		n.notify(h)
		select { // a second call is counted below, never blocks
		case told <- struct{}{}:
		default:
		}
	}
	released := make(chan error, 1)
	go func() {
		select {
		case <-told:
			released <- Release(ctx, holder, key)
		case <-time.After(30 * time.Second):
			released <- errors.New("the waiter was never told who holds the lock")
		}
	}()
	start := time.Now()
	if err := Acquire(ctx, waiter, key, 40*time.Second, notify); err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if d := time.Since(start); d < NotifyAfter {
		t.Errorf("Acquire returned after %s, before the holder let go (at %s at the earliest)", d, NotifyAfter)
	}
	if err := <-released; err != nil { // sent before Acquire could return
		t.Fatalf("holder Release: %v", err)
	}
	if calls := n.calls(); len(calls) != 1 || calls[0] == nil || calls[0].Application != "gitmesh fetch a 1 team/app" {
		t.Errorf("notify calls = %+v, want one naming the holder", calls)
	}
	if v := lockTimeout(t, waiter); v != "0" {
		t.Errorf("lock_timeout after the wait = %q, want it reset to 0", v)
	}
	if h, err := HolderOf(ctx, holder, key); err != nil || h == nil || h.PID != backendPID(t, waiter) {
		t.Errorf("HolderOf = %+v, %v; want the waiter", h, err)
	}
}

// Read and write locks of the same ids, and read locks of different
// devices, are different locks in PostgreSQL too.
func TestKeysIndependent(t *testing.T) {
	ctx := context.Background()
	dbURL := database(t)
	a := session(t, dbURL, "a")
	b := session(t, dbURL, "b")
	pairs := [][2]Key{
		{Write(1), Read(1, 1)},
		{Read(1, 1), Read(1, 2)},
		{Read(1, 2), Read(2, 1)},
		{Write(1), Write(2)},
	}
	for _, p := range pairs {
		if err := Acquire(ctx, a, p[0], time.Second, nil); err != nil {
			t.Fatalf("Acquire(%+v): %v", p[0], err)
		}
		if err := Acquire(ctx, b, p[1], 200*time.Millisecond, nil); err != nil {
			t.Errorf("Acquire(%+v) while %+v is held: %v", p[1], p[0], err)
		}
		for _, k := range []struct {
			key Key
			c   *sql.Conn
		}{{p[0], a}, {p[1], b}} {
			if h, err := HolderOf(ctx, a, k.key); err != nil || h == nil || h.PID != backendPID(t, k.c) {
				t.Errorf("HolderOf(%+v) = %+v, %v; want backend %d", k.key, h, err, backendPID(t, k.c))
			}
		}
		Release(ctx, a, p[0])
		Release(ctx, b, p[1])
	}
}

func TestAcquireCancelled(t *testing.T) {
	dbURL := database(t)
	holder := session(t, dbURL, "holder")
	waiter := session(t, dbURL, "waiter")
	key := Write(9)
	if err := Acquire(context.Background(), holder, key, time.Second, nil); err != nil {
		t.Fatalf("holder Acquire: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Acquire(ctx, waiter, key, 20*time.Second, nil)
	if err == nil || errors.Is(err, ErrTimeout) {
		t.Fatalf("Acquire with a cancelled context = %v, want a non-timeout error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Acquire ignored its context for %s", d)
	}
	if !strings.Contains(err.Error(), "take write lock") {
		t.Errorf("error %q does not say which lock", err)
	}
}

// A release that fails (here: the session sits in an aborted
// transaction) must not leave the lock held by a connection its pool
// hands out again: Unlock says what failed and discards the connection,
// so the session ends and the lock is free for others.
func TestUnlockThatFailsDropsTheLock(t *testing.T) {
	ctx := context.Background()
	dbURL := database(t)
	d, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.SetMaxIdleConns(1)
	conn, err := d.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := Write(77)
	if err := Acquire(ctx, conn, key, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	pid := backendPID(t, conn)
	if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	conn.ExecContext(ctx, `SELECT 1/0`) // aborts the transaction
	err = Unlock(conn, key)
	if err == nil || !strings.Contains(err.Error(), "write lock") {
		t.Fatalf("Unlock in an aborted transaction = %v; want an error naming the write lock", err)
	}
	conn.Close()

	other := session(t, dbURL, "other")
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := Try(ctx, other, key)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write lock is still held 10 s after a failed Unlock: the connection went back to its pool holding it")
		}
		time.Sleep(20 * time.Millisecond)
	}
	again, err := d.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if backendPID(t, again) == pid {
		t.Fatalf("the pool handed out again the session (backend %d) whose unlock failed", pid)
	}
}

// Held tells a lock its session holds from one it released, and from one
// whose session was ended (as a failover ends every session).
func TestHeldSeesALockGoneWithItsSession(t *testing.T) {
	ctx := context.Background()
	dbURL := database(t)
	c := session(t, dbURL, "gitmesh test holder")
	k := Write(42)
	if err := Held(ctx, c, k); !errors.Is(err, ErrLost) {
		t.Fatalf("Held before taking the lock = %v, want ErrLost", err)
	}
	if err := Acquire(ctx, c, k, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := Held(ctx, c, k); err != nil {
		t.Fatalf("Held while holding the lock = %v", err)
	}
	pid := backendPID(t, c)
	admin := session(t, dbURL, "gitmesh test admin")
	if _, err := admin.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	if err := Held(ctx, c, k); !errors.Is(err, ErrLost) {
		t.Fatalf("Held after the session was ended = %v, want ErrLost", err)
	}
}

// PostgreSQL may grant a lock released just as the waiter's lock_timeout
// fires and still report the timeout (about one wait in twenty that ends
// at the release, here). Acquire must then count the lock as taken, once:
// a waiter that believed the error held it unknowingly (a read lock kept
// by a connection back in its pool stalled every other session on that
// copy for lock_timeout) or twice (one unlock left it held).
func TestAcquireEndingAsTheHolderReleases(t *testing.T) {
	dbURL := database(t)
	holder, waiter := session(t, dbURL, "holder"), session(t, dbURL, "waiter")
	ctx := context.Background()
	key := Read(7, 1)
	taken := 0
	for i := 0; i < 1000; i++ {
		if ok, err := Try(ctx, holder, key); !ok || err != nil {
			t.Fatalf("holder: %v %v", ok, err)
		}
		released := make(chan struct{})
		go func() {
			defer close(released)
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			if err := Release(ctx, holder, key); err != nil {
				t.Error(err)
			}
		}()
		err := Acquire(ctx, waiter, key, 2*time.Millisecond, nil)
		<-released
		if err != nil && !errors.Is(err, ErrTimeout) {
			t.Fatal(err)
		}
		if err == nil {
			taken++
			if err := Release(ctx, waiter, key); err != nil {
				t.Fatal(err)
			}
		}
		if Held(ctx, waiter, key) == nil {
			t.Fatalf("wait %d: Acquire returned %v, and the waiter's session holds the lock after it (released once if taken)", i, err)
		}
	}
	t.Logf("1000 waits ending near the release: %d took the lock", taken)
}
