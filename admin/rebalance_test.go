package admin

import (
	"fmt"
	"testing"
)

func TestPlanMoves(t *testing.T) {
	devs := func(zones ...string) []Candidate {
		var out []Candidate
		for i, z := range zones {
			out = append(out, Candidate{ID: int32(i + 1), Name: string(rune('a' + i)), Zone: z})
		}
		return out
	}
	on := func(n int, holders ...string) [][2]string {
		var out [][2]string
		for i := 0; i < n; i++ {
			for _, h := range holders {
				out = append(out, [2]string{fmt.Sprintf("r%02d", i), h})
			}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		cands  []Candidate
		pairs  [][2]string
		moves  int
		spread int    // max minus min copies per device after the plan
		from   string // every move is from this device, when set
	}{
		{"a new device takes its share", devs("", "", "", ""), on(4, "a", "b", "c"), 3, 0, ""},
		{"balanced already", devs("", "", ""), on(4, "a", "b", "c"), 0, 0, ""},
		{"one apart is balanced", devs("", "", "", ""), append(on(2, "a", "b", "c"), [2]string{"r09", "d"}), 0, 1, ""},
		{"zones: only the copy whose zone the new device shares moves", devs("z1", "z2", "z3", "z1"), on(2, "a", "b", "c"), 1, 1, "a"},
		{"zones: a move may not leave a zone", devs("z1", "z2", "z2"), on(2, "a", "b"), 1, 1, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := PlanMoves(tc.cands, tc.pairs)
			if len(plan) != tc.moves {
				t.Fatalf("%d moves, want %d: %v", len(plan), tc.moves, plan)
			}
			held := map[string]map[string]bool{}
			count := map[string]int{}
			for _, c := range tc.cands {
				count[c.Name] = 0
			}
			for _, p := range tc.pairs {
				if held[p[0]] == nil {
					held[p[0]] = map[string]bool{}
				}
				held[p[0]][p[1]] = true
				count[p[1]]++
			}
			for _, m := range plan {
				if !held[m.Repo][m.From] || held[m.Repo][m.To] {
					t.Fatalf("move %v: from a non-holder or to a holder", m)
				}
				if tc.from != "" && m.From != tc.from {
					t.Fatalf("move %v: want every move from %s", m, tc.from)
				}
				delete(held[m.Repo], m.From)
				held[m.Repo][m.To] = true
				count[m.From]--
				count[m.To]++
			}
			lo, hi := 1<<30, 0
			for _, n := range count {
				lo, hi = min(lo, n), max(hi, n)
			}
			if hi-lo != tc.spread {
				t.Fatalf("after the plan the copies per device are %v: spread %d, want %d", count, hi-lo, tc.spread)
			}
		})
	}
}
