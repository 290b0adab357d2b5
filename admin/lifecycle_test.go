package admin

import (
	"testing"

	"gitmesh/version"
)

func TestRenamedInto(t *testing.T) {
	ren := func(from, to string) version.DiskTask {
		return version.DiskTask{Action: "rename", Name: from, NewName: to}
	}
	rm := func(name string) version.DiskTask { return version.DiskTask{Action: "remove", Name: name} }
	for _, tc := range []struct {
		what      string
		tasks     []version.DiskTask
		name, own string
		want      bool
	}{
		{"renamed away, renamed back", []version.DiskTask{ren("a", "b")}, "a", "b", true},
		{"twice away, back", []version.DiskTask{ren("a", "b"), ren("b", "c")}, "a", "c", true},
		{"back and forth", []version.DiskTask{ren("a", "b"), ren("b", "a")}, "b", "a", true},
		{"another repository's copy", []version.DiskTask{ren("a", "x")}, "a", "b", false},
		{"to be removed", []version.DiskTask{rm("a")}, "a", "b", false},
		{"renamed, then removed", []version.DiskTask{ren("a", "b"), rm("b")}, "a", "b", false},
		{"an old copy and our own", []version.DiskTask{rm("a"), ren("a", "b")}, "a", "b", false},
	} {
		if got := renamedInto(tc.tasks, tc.name, tc.own); got != tc.want {
			t.Errorf("%s: renamedInto(%v, %s, %s) = %v, want %v", tc.what, tc.tasks, tc.name, tc.own, got, tc.want)
		}
	}
}
