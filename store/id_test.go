package store

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIDsArePrefixedUniqueAndSortedByCreation(t *testing.T) {
	t.Parallel()
	var g idGen
	base := time.Now()
	var ids []string
	for i := range 5000 {
		ids = append(ids, g.next("aud_", base.Add(time.Duration(i/100)*time.Millisecond)))
	}
	if !slices.IsSorted(ids) {
		t.Error("IDs do not sort in creation order")
	}
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Error("IDs are not unique")
	}
	if len(ids[0]) != len("aud_")+26 || ids[0][:4] != "aud_" {
		t.Errorf("ID %q: want aud_ and 26 characters", ids[0])
	}
	// Two generators (two processes) in the same millisecond still differ.
	var g2 idGen
	if a, b := g.next("x_", base), g2.next("x_", base); a == b {
		t.Errorf("two generators made the same ID %s", a)
	}
	// Consecutive IDs share no more than their time and sequence: the last
	// 13 characters (65 of the 68 random bits) differ between neighbours.
	for i := 1; i < len(ids); i++ {
		if ids[i][len(ids[i])-13:] == ids[i-1][len(ids[i-1])-13:] {
			t.Fatalf("neighbouring IDs %s and %s share their random part", ids[i-1], ids[i])
		}
	}
	// More than 4096 IDs in one millisecond still sort.
	var g3 idGen
	burst := make([]string, 10000)
	for i := range burst {
		burst[i] = g3.next("x_", base)
	}
	if !slices.IsSorted(burst) {
		t.Error("a burst of 10,000 IDs in one millisecond does not sort")
	}
}

func TestWellFormedID(t *testing.T) {
	t.Parallel()
	var g idGen
	id := g.next("agt_", time.Now())
	for _, tt := range []struct {
		prefix, id string
		want       bool
	}{
		{"agt_", id, true},
		{"apr_", id, false},
		{"agt_", "agt_" + id[4:29], false},
		{"agt_", id + "0", false},
		{"agt_", "agt_" + strings.Repeat("a", 26), false}, // lower case
		{"agt_", "agt_" + strings.Repeat("0", 25) + "_", false},
		{"agt_", "agt_" + strings.Repeat("U", 26), false}, // not Crockford
		{"agt_", "", false},
		{"agt_", "agt_unknown", false},
	} {
		if got := WellFormedID(tt.prefix, tt.id); got != tt.want {
			t.Errorf("WellFormedID(%q, %q) = %v; want %v", tt.prefix, tt.id, got, tt.want)
		}
	}
}

func TestIDAtBoundsIDsByTime(t *testing.T) {
	var g idGen
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 8_000_000, time.UTC)
	before, at, after := g.next("whd_", t0.Add(-time.Millisecond)), g.next("whd_", t0), g.next("whd_", t0.Add(time.Millisecond))
	if b := idAt("whd_", t0); before >= b || b > at || at >= after {
		t.Errorf("idAt = %s; want between %s and %s (made at the boundary: %s)", b, before, after, at)
	}
}
