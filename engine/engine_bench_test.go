package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/store"
)

// BenchmarkDecide shows that a decision's cost does not grow with the
// number of agents: data is looked up by key, never scanned.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{100, 10_000, 100_000} {
		e, err := New(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		_, err = e.Load(b.Context(), memSource{n: n, gen: func(i int) store.Agent {
			return store.Agent{ID: fmt.Sprintf("agt_%d", i), OwnerID: "u", Status: store.StatusActive,
				TokenHash: fmt.Sprintf("h%d", i), Permissions: []store.Permission{
					{Resource: "mcp:github:*", Actions: []string{"read"}},
					{Resource: "mcp:github:issues", Actions: []string{"read", "comment"}},
					{Resource: "admin:*:delete", Actions: []string{"*"}},
					{Resource: "docs:public", Actions: []string{"read"}},
					{Resource: "mcp:slack:channels", Actions: []string{"post"}},
				}}
		}})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct {
			name string
			in   Input
		}{
			{"allowed", Input{AgentID: fmt.Sprintf("agt_%d", n/2), Action: "read", Resource: "mcp:github:repos"}},
			{"denied", Input{AgentID: fmt.Sprintf("agt_%d", n/2), Action: "write", Resource: "mcp:github:repos"}},
			{"by-token", Input{TokenHash: fmt.Sprintf("h%d", n/3), Action: "comment", Resource: "mcp:github:issues"}},
		} {
			b.Run(fmt.Sprintf("%s/agents=%d", c.name, n), func(b *testing.B) {
				c.in.Now = time.Now()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := e.Decide(b.Context(), c.in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
