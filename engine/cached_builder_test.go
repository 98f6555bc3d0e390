package engine

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/kavach-dev/kavach/domain"
)

// The shared builder must not keep what it built for documents that are
// gone: an agent's owner who rewrites its (large) permissions n times, each
// rewrite applied on every replica through the feed, must not leave n sets
// in memory when memory holds one document of that agent. Large sets are
// built apart; what is shared is bounded in bytes (maxSharedBytes).
func TestCachedDataBuilderKeepsNoReplacedSets(t *testing.T) {
	ctx := t.Context()
	db := newDBLookup(memSource{})
	e, err := NewWithData(ctx, CachedData(db, 10), nil)
	if err != nil {
		t.Fatal(err)
	}
	actions := make([]string, 64)
	for i := range actions {
		actions[i] = fmt.Sprintf("act%02d-%s", i, strings.Repeat("x", 50))
	}
	agent := func(u int) domain.Agent {
		res := fmt.Sprintf("mcp:r%d:%s", u, strings.Repeat("y", 900))
		perms := make([]domain.Permission, 256)
		for j := range perms {
			a, k := j%64, j/64+1
			var acts []string
			for i, x := range actions {
				if i != a && i != (a+k)%64 {
					acts = append(acts, x)
				}
			}
			perms[j] = domain.Permission{Resource: res, Actions: acts}
		}
		return testAgent("agt_big", "h-big", perms...)
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{agent(0)}}); err != nil {
		t.Fatal(err)
	}
	one := heap() - base
	const updates = 30
	for u := 1; u <= updates; u++ {
		if err := e.Apply(ctx, Changes{Agents: []domain.Agent{agent(u)}}); err != nil {
			t.Fatal(err)
		}
	}
	after := heap() - base
	t.Logf("one document (and its set): %d KB; after %d rewrites of its permissions: %d KB", one>>10, updates, after>>10)
	if after > 3*one {
		t.Errorf("memory holds one agent, yet %d rewrites of its permissions keep %d KB (%.1f× one)", updates, after>>10, float64(after)/float64(one))
	}
	runtime.KeepAlive(e)
}
