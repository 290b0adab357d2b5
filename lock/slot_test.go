package lock

import (
	"context"
	"errors"
	"testing"
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
	// Another owner's places are its own.
	if _, err := TakeSlot(ctx, probe, UserSession(43, 0), n); err != nil {
		t.Fatalf("another user's first place: %v", err)
	}
}
