package version

import (
	"reflect"
	"testing"
)

func TestNextChain(t *testing.T) {
	ren := func(id int64, from, to string) DiskTask {
		return DiskTask{ID: id, Action: "rename", Name: from, NewName: to}
	}
	rm := func(id int64, name string) DiskTask { return DiskTask{ID: id, Action: "remove", Name: name} }
	ids := func(ts []DiskTask) []int64 {
		var out []int64
		for _, t := range ts {
			out = append(out, t.ID)
		}
		return out
	}
	for _, tc := range []struct {
		what        string
		tasks       []DiskTask
		chain, rest []int64
	}{
		{"one removal", []DiskTask{rm(1, "a"), rm(2, "a")}, []int64{1}, []int64{2}},
		{"renamed twice", []DiskTask{ren(1, "a", "b"), rm(2, "x"), ren(3, "b", "c")}, []int64{1, 3}, []int64{2}},
		{"renamed and back", []DiskTask{ren(1, "a", "b"), ren(2, "b", "a")}, []int64{1, 2}, nil},
		{"renamed, then removed", []DiskTask{ren(1, "a", "b"), rm(2, "b"), ren(3, "b", "c")}, []int64{1}, []int64{2, 3}},
		{"another copy's rename", []DiskTask{ren(1, "a", "b"), ren(2, "x", "y")}, []int64{1}, []int64{2}},
	} {
		chain, rest := nextChain(tc.tasks)
		if !reflect.DeepEqual(ids(chain), tc.chain) || !reflect.DeepEqual(ids(rest), tc.rest) {
			t.Errorf("%s: chain %v, rest %v; want %v, %v", tc.what, ids(chain), ids(rest), tc.chain, tc.rest)
		}
	}
}

// A task left undone holds back every later task on a name it touches,
// and no other.
func TestStuckErrorHoldsBackTasksOnItsNames(t *testing.T) {
	stuck := &StuckError{Names: map[string]bool{}}
	stuck.add([]DiskTask{{Action: "rename", Name: "team/a", NewName: "team/b"}, {Action: "rename", Name: "team/b", NewName: "team/c"}})
	for _, c := range []struct {
		task DiskTask
		want bool
	}{
		{DiskTask{Action: "remove", Name: "team/c"}, true},                    // removed where the stuck rename ends
		{DiskTask{Action: "rename", Name: "team/x", NewName: "team/a"}, true}, // onto a name the stuck copy still has
		{DiskTask{Action: "remove", Name: "team/b"}, true},
		{DiskTask{Action: "remove", Name: "team/y"}, false},
		{DiskTask{Action: "rename", Name: "team/y", NewName: "team/z"}, false},
	} {
		if got := stuck.touches([]DiskTask{c.task}); got != c.want {
			t.Errorf("%+v held back: %v, want %v", c.task, got, c.want)
		}
	}
}
