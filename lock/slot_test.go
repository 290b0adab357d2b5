package lock

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"gitmesh/meshtest"
)

func TestSlotKeysNeverMeetLocks(t *testing.T) {
	ids := []int32{1, 2, 1<<31 - 1}
	for _, id := range ids {
		for _, slot := range []int{0, 1, 999} {
			for _, k := range []Key{UserSession(id, slot), PushWaiter(id, slot)} {
				for _, other := range ids {
					if k == Write(other) || k == Read(other, id) || k == Read(id, other) {
						t.Errorf("place %+v is also a lock", k)
					}
				}
			}
			if UserSession(id, slot) == PushWaiter(id, slot) {
				t.Errorf("user place and waiter place %d of %d share a key", slot, id)
			}
		}
	}
	if got := UserSession(3, 7).Describe(); got != "session place" {
		t.Errorf("UserSession.Describe() = %q", got)
	}
	if got := PushWaiter(3, 7).Describe(); got != "place in the write lock's queue" {
		t.Errorf("PushWaiter.Describe() = %q", got)
	}
}

func TestTakeSlotTakesOnePlaceAndRefusesWhenFull(t *testing.T) {
	ctx := context.Background()
	dbURL := database(t)
	const n = 3
	taken := map[Key]bool{}
	var holders []int
	for i := 0; i < n; i++ {
		c := session(t, dbURL, "gitmesh test")
		k, err := TakeSlot(ctx, c, UserSession(42, 0), n)
		if err != nil {
			t.Fatalf("place %d of %d: %v", i+1, n, err)
		}
		if taken[k] {
			t.Fatalf("place %+v handed out twice", k)
		}
		taken[k] = true
		holders = append(holders, backendPID(t, c))
	}
	// Each session holds exactly the one place it was given.
	probe := session(t, dbURL, "gitmesh probe")
	for _, pid := range holders {
		var held int
		if err := probe.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1`, pid).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held != 1 {
			t.Errorf("session %d holds %d advisory locks, want 1", pid, held)
		}
	}
	if _, err := TakeSlot(ctx, probe, UserSession(42, 0), n); !errors.Is(err, ErrFull) {
		t.Fatalf("a place beyond %d: err %v, want ErrFull", n, err)
	}
	// A session that dies frees its place.
	var gone bool
	if err := probe.QueryRowContext(ctx, `SELECT pg_terminate_backend($1, 10000)`, holders[1]).Scan(&gone); err != nil || !gone {
		t.Fatalf("terminate a holder: %v, %v", gone, err)
	}
	k, err := TakeSlot(ctx, probe, UserSession(42, 0), n)
	if err != nil || !taken[k] {
		t.Fatalf("after a holder left: place %+v, %v; want the place it held", k, err)
	}
	if err := Release(ctx, probe, k); err != nil {
		t.Fatal(err)
	}
	// Another owner's places are its own.
	if _, err := TakeSlot(ctx, probe, UserSession(43, 0), n); err != nil {
		t.Fatalf("another user's first place: %v", err)
	}
}

// BenchmarkTakeSlot is what a limit costs a session: one statement that
// finds the last free place of ten.
func BenchmarkTakeSlot(b *testing.B) {
	ctx := context.Background()
	u, err := meshtest.Server().NewDatabase()
	if err != nil {
		b.Fatal(err)
	}
	d, err := sql.Open("postgres", u)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var others []*sql.Conn
	for i := 0; i < 9; i++ {
		c, err := d.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if _, err := TakeSlot(ctx, c, UserSession(1, 0), 10); err != nil {
			b.Fatal(err)
		}
		others = append(others, c)
	}
	c, err := d.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.Run("baseline-one-try-lock", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var ok bool
			if err := c.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(1, 1)`).Scan(&ok); err != nil || !ok {
				b.Fatal(err)
			}
			Release(ctx, c, Key{1, 1})
		}
	})
	b.Run("last-of-ten", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			k, err := TakeSlot(ctx, c, UserSession(1, 0), 10)
			if err != nil {
				b.Fatal(err)
			}
			Release(ctx, c, k)
		}
	})
}
