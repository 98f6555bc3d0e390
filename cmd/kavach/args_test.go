package main

import (
	"slices"
	"testing"
)

func TestFlagsMayFollowArguments(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"kavach", "agent", "get", "agt_X", "--server", "http://h:1"}, []string{"kavach", "agent", "get", "--server", "http://h:1", "agt_X"}},
		{[]string{"kavach", "approval", "approve", "apr_1", "--by", "alice", "--server=http://h"}, []string{"kavach", "approval", "approve", "--by", "alice", "--server=http://h", "apr_1"}},
		// Already in order, a boolean flag, and "--" ends the flags.
		{[]string{"kavach", "agent", "get", "--server", "s", "agt_X"}, []string{"kavach", "agent", "get", "--server", "s", "agt_X"}},
		{[]string{"kavach", "audit", "verify", "--json", "--database", "x.db"}, []string{"kavach", "audit", "verify", "--json", "--database", "x.db"}},
		{[]string{"kavach", "agent", "get", "--", "-odd-id"}, []string{"kavach", "agent", "get", "--", "-odd-id"}},
		// Not a leaf: left alone.
		{[]string{"kavach", "agent", "--help"}, []string{"kavach", "agent", "--help"}},
		{[]string{"kavach"}, []string{"kavach"}},
	} {
		if got := interspersed(app, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("interspersed(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
