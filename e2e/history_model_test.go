package e2e

import (
	"strings"
	"testing"
	"time"
)

// The history test's model flags what it promises to flag, with no
// cluster: a ref served at another ref's commit, an acknowledged commit
// missing from a branch, a one-shot ref moved or missing, two
// acknowledgements of a shared branch that diverge, and a read older
// than one that ended before it began.
func TestHistoryModelFlagsEachViolation(t *testing.T) {
	h := newHistory()
	lin := refKey{"team/app", "refs/heads/lin0"}
	lin1 := refKey{"team/app", "refs/heads/lin1"}
	elsewhere := refKey{"team/lib", "refs/heads/lin0"}
	tag := refKey{"team/app", "refs/tags/t-o0-1"}
	shared := refKey{"team/app", "refs/heads/shared"}
	h.wrote(lin, "l1", "")
	h.wrote(lin, "l2", "l1")
	h.wrote(lin1, "o1", "")
	h.wrote(elsewhere, "e1", "")
	h.wrote(tag, "t1", "")
	h.wrote(shared, "s1", "")
	h.wrote(shared, "s2a", "s1")
	h.wrote(shared, "s2b", "s1")
	for _, a := range []struct {
		k    refKey
		id   string
		once bool
	}{{lin, "l2", false}, {tag, "t1", true}, {shared, "s2a", false}} {
		if err := h.ack(a.k, a.id, a.once); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.ack(shared, "s2b", false); err == nil {
		t.Error("two diverging acknowledgements of a shared branch were not flagged")
	}
	acked := h.snapshot()
	good := map[string]string{lin.ref: "l2", tag.ref: "t1", shared.ref: "s2a"}
	for _, c := range []struct {
		name string
		refs map[string]string
		kind string
	}{
		{"everything acknowledged", good, ""},
		{"a branch at another branch's commit", with(good, lin.ref, "o1"), other},
		{"a branch at another repository's commit", with(good, lin.ref, "e1"), other},
		{"a branch behind its acknowledged commit", with(good, lin.ref, "l1"), lost},
		{"a branch missing", with(good, lin.ref, ""), lost},
		{"a tag missing", with(good, tag.ref, ""), lost},
		{"a shared branch on the rejected side", with(good, shared.ref, "s2b"), lost},
	} {
		v := &violations{}
		checkServed(h, v, servedRead{dev: "a", how: "test", refs: c.refs}, "team/app", acked, lost)
		switch {
		case c.kind == "" && len(v.list) != 0:
			t.Errorf("%s: flagged %v", c.name, v.list)
		case c.kind != "" && v.count(c.kind) == 0:
			t.Errorf("%s: not flagged as %s (found %v)", c.name, c.kind, v.list)
		}
	}

	now := time.Now()
	h.reads["team/app"] = []servedRead{
		{start: now, end: now.Add(time.Second), dev: "a", how: "ls-remote", refs: good},
		{start: now.Add(2 * time.Second), end: now.Add(3 * time.Second), dev: "b", how: "clone", refs: with(good, lin.ref, "l1")},
		{start: now.Add(4 * time.Second), end: now.Add(5 * time.Second), dev: "c", how: "fetch", refs: with(good, tag.ref, "")},
	}
	v := &violations{}
	checkBackwards(h, v)
	if v.count(backwards) != 2 || !strings.Contains(strings.Join(v.list, "\n"), "refs/heads/lin0 at l1") {
		t.Errorf("backwards reads: want 2 (a branch gone back, a tag gone), found %v", v.list)
	}
}

// with is refs with ref at id ("" removes it).
func with(refs map[string]string, ref, id string) map[string]string {
	out := map[string]string{}
	for k, v := range refs {
		out[k] = v
	}
	if id == "" {
		delete(out, ref)
	} else {
		out[ref] = id
	}
	return out
}
