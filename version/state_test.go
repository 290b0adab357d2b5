package version

import (
	"reflect"
	"testing"
	"time"
)

func TestStateRules(t *testing.T) {
	writer := &Writer{User: "alice", Device: "b", PID: 42, Started: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), Token: "t"}
	a := func(v int64) Copy { return Copy{DeviceID: 1, Device: "a", URL: "/srv/a", Version: v} }
	b := func(v int64) Copy { return Copy{DeviceID: 2, Device: "b", URL: "ssh://git@b", Version: v} }
	c := func(v int64) Copy { return Copy{DeviceID: 3, Device: "c", URL: "ssh://git@c/", Version: v} }
	frozenB := b(4)
	frozenB.IsWriting, frozenB.Writer = true, writer

	tests := []struct {
		name    string
		st      State
		highest int64
		self    *Copy // nil: no copy of this device
		current bool
		frozen  *Copy
		leaders []string // device names, in order
	}{
		{
			name:    "no versions",
			st:      State{Repo: "r", SelfID: 1},
			highest: -1,
		},
		{
			name:    "unregistered device, no versions",
			st:      State{Repo: "r"},
			highest: -1,
		},
		{
			name:    "self missing",
			st:      State{Repo: "r", SelfID: 1, Copies: []Copy{b(3), c(5)}},
			highest: 5,
			leaders: []string{"c"},
		},
		{
			name:    "self alone at version 0",
			st:      State{Repo: "r", SelfID: 1, Copies: []Copy{a(0)}},
			highest: 0,
			self:    ptr(a(0)),
			current: true,
		},
		{
			name:    "self behind",
			st:      State{Repo: "r", SelfID: 1, Copies: []Copy{a(2), b(7), c(6)}},
			highest: 7,
			self:    ptr(a(2)),
			leaders: []string{"b"},
		},
		{
			name:    "self ahead",
			st:      State{Repo: "r", SelfID: 1, Copies: []Copy{a(9), b(7), c(8)}},
			highest: 9,
			self:    ptr(a(9)),
			current: true,
		},
		{
			name:    "tie at the top, self among them",
			st:      State{Repo: "r", SelfID: 2, Copies: []Copy{a(5), b(5), c(5)}},
			highest: 5,
			self:    ptr(b(5)),
			current: true,
			leaders: []string{"a", "c"},
		},
		{
			name:    "tie at the top, self behind",
			st:      State{Repo: "r", SelfID: 1, Copies: []Copy{a(1), b(5), c(5)}},
			highest: 5,
			self:    ptr(a(1)),
			leaders: []string{"b", "c"},
		},
		{
			name:    "frozen copy",
			st:      State{Repo: "r", SelfID: 1, Copies: []Copy{a(4), frozenB, c(3)}},
			highest: 4,
			self:    ptr(a(4)),
			current: true,
			frozen:  &frozenB,
			leaders: []string{"b"},
		},
		{
			name:    "frozen self",
			st:      State{Repo: "r", SelfID: 2, Copies: []Copy{a(4), frozenB}},
			highest: 4,
			self:    &frozenB,
			current: true,
			frozen:  &frozenB,
			leaders: []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.st
			if got := st.Highest(); got != tt.highest {
				t.Errorf("Highest() = %d, want %d", got, tt.highest)
			}
			self, ok := st.Self()
			switch {
			case tt.self == nil && ok:
				t.Errorf("Self() = %+v, true; want none", self)
			case tt.self != nil && !ok:
				t.Errorf("Self() = none; want %+v", *tt.self)
			case tt.self != nil && !reflect.DeepEqual(self, *tt.self):
				t.Errorf("Self() = %+v; want %+v", self, *tt.self)
			}
			if got := st.Current(); got != tt.current {
				t.Errorf("Current() = %v, want %v", got, tt.current)
			}
			fr, ok := st.Frozen()
			switch {
			case tt.frozen == nil && ok:
				t.Errorf("Frozen() = %+v, true; want none", fr)
			case tt.frozen != nil && !ok:
				t.Errorf("Frozen() = none; want %+v", *tt.frozen)
			case tt.frozen != nil && !reflect.DeepEqual(fr, *tt.frozen):
				t.Errorf("Frozen() = %+v; want %+v", fr, *tt.frozen)
			}
			var names []string
			for _, l := range st.Leaders() {
				names = append(names, l.Device)
				if l.Version != tt.highest {
					t.Errorf("leader %s at version %d, highest is %d", l.Device, l.Version, tt.highest)
				}
				if l.DeviceID == st.SelfID {
					t.Errorf("Leaders() includes this device (%s)", l.Device)
				}
			}
			if !reflect.DeepEqual(names, tt.leaders) {
				t.Errorf("Leaders() = %v, want %v", names, tt.leaders)
			}
		})
	}
}

func ptr(c Copy) *Copy { return &c }

func TestPeerURL(t *testing.T) {
	tests := []struct {
		base, repo, want string
	}{
		{"ssh://git@b", "app", "ssh://git@b/app.git"},
		{"ssh://git@b/", "app", "ssh://git@b/app.git"},
		{"ssh://git@b:2222", "team/app", "ssh://git@b:2222/team/app.git"},
		{"ssh://git@b:2222/", "team/app", "ssh://git@b:2222/team/app.git"},
		{"ssh://git@b//", "team/app", "ssh://git@b/team/app.git"},
		{"ssh://git@b/srv/git", "team/app", "ssh://git@b/srv/git/team/app.git"},
		{"/srv/git/b", "team/app", "/srv/git/b/team/app.git"},
		{"/srv/git/b/", "team/app", "/srv/git/b/team/app.git"},
		{"/srv/git/b", "app", "/srv/git/b/app.git"},
		{"relative/root", "team/sub/app", "relative/root/team/sub/app.git"},
	}
	for _, tt := range tests {
		if got := PeerURL(tt.base, tt.repo); got != tt.want {
			t.Errorf("PeerURL(%q, %q) = %q, want %q", tt.base, tt.repo, got, tt.want)
		}
	}
}
