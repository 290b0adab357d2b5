package version

import "testing"

func TestQuorum(t *testing.T) {
	holders := func(n int) State { return State{Holders: make([]Device, n)} }
	for _, tc := range []struct {
		holders, setting, want int
	}{
		{1, 0, 1}, {2, 0, 2}, {3, 0, 2}, {4, 0, 3}, {5, 0, 3},
		{3, 1, 1}, {3, 2, 2}, {3, 3, 3}, {3, 7, 3}, {0, 0, 1}, {0, 2, 1},
	} {
		if got := holders(tc.holders).Quorum(tc.setting); got != tc.want {
			t.Errorf("%d holders, write_quorum %d: quorum %d, want %d", tc.holders, tc.setting, got, tc.want)
		}
		if got := QuorumOf(tc.holders, tc.setting); got != tc.want {
			t.Errorf("QuorumOf(%d, %d) = %d, want %d", tc.holders, tc.setting, got, tc.want)
		}
	}
}

func TestPendingCopyIsNotCurrent(t *testing.T) {
	st := State{SelfID: 1, Copies: []Copy{{DeviceID: 1, Version: 3, Pending: true}, {DeviceID: 2, Version: 3}}}
	if st.Current() {
		t.Fatal("a copy whose newest version is staged but not shown counts as current")
	}
	st.Copies[0].Pending = false
	if !st.Current() {
		t.Fatal("a shown copy at the newest version is not current")
	}
}

func TestQuorumErrorNamesTheUnreachable(t *testing.T) {
	e := &QuorumError{Repo: "team/app", Stored: 1, Need: 2, Holders: 3, Unreachable: []string{"b", "c"}}
	want := "push to team/app refused: only 1 of 3 devices could store it and 2 must; unreachable: b, c; nothing was changed, try again when they are back"
	if e.Error() != want {
		t.Fatalf("got %q\nwant %q", e.Error(), want)
	}
}
