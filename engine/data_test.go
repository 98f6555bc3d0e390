package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"

	"github.com/kavach-dev/kavach/domain"
)

// recordingData is a store of our own behind the seam: OPA's in-memory
// store, recording the paths read and refusing to list a whole collection.
type recordingData struct {
	storage.Store
	mu    sync.Mutex
	reads []string
}

func (d *recordingData) Read(ctx context.Context, txn storage.Transaction, path storage.Path) (any, error) {
	d.mu.Lock()
	d.reads = append(d.reads, path.String())
	d.mu.Unlock()
	return d.Store.Read(ctx, txn, path)
}

// The rules read policy data through the store the engine is given, and
// only by key: a store that holds a few agents and reads the rest through
// can take OPA's in-memory store's place without a rule changing.
func TestDecisionsReadDataThroughTheSeamByKey(t *testing.T) {
	ctx := t.Context()
	data := &recordingData{Store: MemoryData()}
	e, err := NewWithData(ctx, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	perm := domain.Permission{Resource: "mcp:github:*", Actions: []string{"read"}}
	if _, err := e.Load(ctx, memSource{agents: []domain.Agent{testAgent("agt_a", "h-a", perm), testAgent("agt_b", "h-b", perm)}}); err != nil {
		t.Fatal(err)
	}
	e.NoCache = true
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, in := range []Input{
		{AgentID: "agt_a", Action: "read", Resource: "mcp:github:repos", Now: now},
		{TokenHash: "h-b", Action: "write", Resource: "mcp:github:repos", Now: now},
	} {
		data.mu.Lock()
		data.reads = nil
		data.mu.Unlock()
		d, err := e.Decide(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{true: CodeAllowed, false: CodeNoPermission}[in.AgentID != ""]
		if d.Code != want {
			t.Fatalf("Decide(%+v) = %s; want %s", in, d.Code, want)
		}
		data.mu.Lock()
		reads := data.reads
		data.mu.Unlock()
		if len(reads) == 0 {
			t.Fatalf("Decide(%+v) read nothing through the store it was given", in)
		}
		for _, p := range reads {
			switch p {
			case "/kavach/agents", "/kavach/tokens", "/kavach/delegations", "/kavach/approvals", "/kavach", "/":
				t.Errorf("Decide(%+v) read the whole collection %s; the rules must look documents up by key", in, p)
			}
			if !strings.HasPrefix(p, "/kavach/") {
				t.Errorf("Decide(%+v) read %s, outside data.kavach", in, p)
			}
		}
		if in.AgentID != "" && !contains(reads, "/kavach/agents/agt_a") || in.TokenHash != "" && !contains(reads, "/kavach/tokens/h-b") {
			t.Errorf("Decide(%+v) reads %v; want the agent looked up by its key", in, reads)
		}
	}
}

func contains(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// An agent's document carries its trust as {level, score} (the level the
// policy ranks, the score reasons quote) and its stored status; an agent
// with no level yet has the initial score's level under the default
// thresholds, and an expired one is active (the policy sees its expiresAt).
func TestAgentDocumentTrustAndStatus(t *testing.T) {
	now := time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)
	src := memSource{agents: []domain.Agent{
		{ID: "a", OwnerID: "u", Status: domain.StatusActive, TokenHash: "h1", Trust: domain.Trust{Score: 52, Level: domain.TrustLimited, ComputedAt: now}},
		{ID: "b", OwnerID: "u", Status: domain.StatusSuspended, TokenHash: "h2", Trust: domain.Trust{Score: 88, Level: domain.TrustTrusted, ComputedAt: now}},
		{ID: "c", OwnerID: "u", Status: domain.StatusExpired, TokenHash: "h3"},
		{ID: "d", OwnerID: "u", Status: domain.StatusRevoked, TokenHash: "h4", Trust: domain.Trust{Score: 52, Level: domain.TrustLimited}},
	}}
	docs, _, err := Documents(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ast.JSON(docs)
	if err != nil {
		t.Fatal(err)
	}
	agents := v.(map[string]any)["agents"].(map[string]any)
	for id, want := range map[string]string{
		"a": `active {"level":"limited","score":52}`,
		"b": `suspended {"level":"trusted","score":88}`,
		"c": `active {"level":"limited","score":50}`,
		"d": `revoked {"level":"limited","score":52}`,
	} {
		doc := agents[id].(map[string]any)
		trust, _ := json.Marshal(doc["trust"])
		if got := fmt.Sprintf("%v %s", doc["status"], trust); got != want {
			t.Errorf("agent %s: status and trust %s; want %s", id, got, want)
		}
	}
	if domain.DefaultTrustThresholds.Level(domain.InitialTrustScore) != domain.TrustLimited {
		t.Fatal("the initial score is no longer limited: the test's expectation is stale")
	}
}
