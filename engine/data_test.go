package engine

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

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
