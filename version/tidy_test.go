package version

import "testing"

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
