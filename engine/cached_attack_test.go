package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// padLookup answers as MySQL/MariaDB do with utf8mb4_bin, a PAD SPACE
// collation (docs/mysql.md): WHERE a.id = 'agt_a ' finds agent 'agt_a'.
type padLookup struct{ *dbLookup }

func (l padLookup) Agent(ctx context.Context, id string) (domain.Agent, bool, error) {
	return l.dbLookup.Agent(ctx, strings.TrimRight(id, " "))
}

func (l padLookup) Approval(ctx context.Context, id string) (domain.Approval, bool, error) {
	return l.dbLookup.Approval(ctx, strings.TrimRight(id, " "))
}

// CachedData keeps a document under the key asked for, and the database
// may match another (MySQL's utf8mb4_bin ignores trailing spaces): an entry
// "agt_a " holding agt_a's document would never be replaced by writes,
// which name "agt_a", and a caller sending agentId "agt_a " would stay
// allowed after agt_a's revoke. Only a document whose own key is the one
// asked for counts; as MemoryData does, "agt_a " is no agent.
func TestCachedDataKeysAreExact(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := testAgent("agt_a", "h-a", domain.Permission{Resource: "*", Actions: []string{"*"}})
	db := newDBLookup(memSource{agents: []domain.Agent{a}})
	e, err := NewWithData(ctx, CachedData(padLookup{db}, 100), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.NoCache = true
	alias := Input{AgentID: "agt_a ", Action: "read", Resource: "x", Now: now}
	if d, _ := e.Decide(ctx, alias); d.Allowed {
		t.Logf("before the revoke, %q is allowed (MemoryData: unknown agent)", alias.AgentID)
	}
	revoked := a
	revoked.Status = domain.StatusRevoked
	db.put(revoked)
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{revoked}}); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.Decide(ctx, Input{AgentID: "agt_a", Action: "read", Resource: "x", Now: now}); d.Code != CodeAgentRevoked {
		t.Fatalf("agt_a = %+v; want revoked", d)
	}
	if d, _ := e.Decide(ctx, alias); d.Allowed {
		t.Errorf("after agt_a's revoke was applied, %q = %+v; want denied", alias.AgentID, d)
	}
}

// Absences are kept apart from documents: anyone may send well-formed
// random tokens (no credential needed), and they must not push the hot
// agents' entries out of memory.
func TestCachedDataAbsencesNeverEvictDocuments(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	db := newDBLookup(memSource{agents: []domain.Agent{testAgent("agt_hot", "h-hot", domain.Permission{Resource: "*", Actions: []string{"*"}})}})
	const capacity = 100
	e, err := NewWithData(ctx, CachedData(db, capacity), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.NoCache = true
	hot := Input{TokenHash: "h-hot", Action: "read", Resource: "x", Now: now}
	if d, _ := e.Decide(ctx, hot); !d.Allowed {
		t.Fatal(d)
	}
	for i := range capacity {
		_, _ = e.Decide(ctx, Input{TokenHash: fmt.Sprintf("random-%d", i), Action: "read", Resource: "x", Now: now})
	}
	before := db.reads.Load()
	if d, _ := e.Decide(ctx, hot); !d.Allowed {
		t.Fatal(d)
	}
	if n := db.reads.Load() - before; n != 0 {
		t.Errorf("the hot agent's decision read the database %d times after %d unknown tokens; want 0 (absences evicted its entry)", n, capacity)
	}
}
