package tests

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

// TestCLIListsPageForYou: the API answers 100 items a page by default; the
// CLI's list commands fetch every page, --limit caps the output (whose
// nextCursor then continues with --cursor), filters and all.
func TestCLIListsPageForYou(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, "agents:\n  maxPerUser: 0\n") // owners of more than a page of agents
	s := start(t, "--database", filepath.Join(dir, "kavach.db"), "--config", cfg)
	srv := "--server=" + s.URL
	cl := s.adminClient()
	ctx := t.Context()

	const n = 250 // two and a half pages of the server's default
	ids := make([]string, n)
	keyIDs := make([]string, n/2)
	var wg sync.WaitGroup
	errs := make(chan error, n+n/2)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				a, err := cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: fmt.Sprintf("owner-%d", i%2), Name: fmt.Sprintf("a%d", i)})
				if err != nil {
					errs <- err
					return
				}
				ids[i] = a.ID
				if i < len(keyIDs) {
					k, err := cl.CreateKey(ctx, api.CreateKeyRequest{Name: fmt.Sprintf("k%d", i), Roles: []string{"auditor"}})
					if err != nil {
						errs <- err
						return
					}
					keyIDs[i] = k.ID
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(ids) // the lists' order
	slices.Sort(keyIDs)

	// One call of the API is one page.
	if page, err := cl.ListAgents(ctx, client.AgentFilter{}); err != nil || len(page.Agents) != api.DefaultPageLimit || page.NextCursor == "" {
		t.Fatalf("GET /v1/agents = %d agents, next %q, %v; want a first page of %d", len(page.Agents), page.NextCursor, err, api.DefaultPageLimit)
	}

	agentIDs := func(out string) []string {
		t.Helper()
		var got []string
		for _, a := range decodeJSON[api.AgentList](t, out).Agents {
			got = append(got, a.ID)
		}
		return got
	}
	out, errOut, code := cli(t, nil, "agent", "list", srv)
	if got := agentIDs(out); code != 0 || !slices.Equal(got, ids) || decodeJSON[api.AgentList](t, out).NextCursor != "" {
		t.Errorf("agent list: exit %d, %d agents (%s); want all %d, each once, oldest first", code, len(got), errOut, n)
	}

	var owner1 []string
	for _, a := range decodeJSON[api.AgentList](t, out).Agents {
		if a.OwnerID == "owner-1" {
			owner1 = append(owner1, a.ID)
		}
	}
	out, _, code = cli(t, nil, "agent", "list", srv, "--owner", "owner-1", "--status", "active")
	if got := agentIDs(out); code != 0 || !slices.Equal(got, owner1) {
		t.Errorf("agent list --owner owner-1: exit %d, %d agents; want its %d", code, len(got), len(owner1))
	}

	// --limit caps the output; its nextCursor continues with --cursor.
	out, _, code = cli(t, nil, "agent", "list", srv, "--limit", "130")
	first := decodeJSON[api.AgentList](t, out)
	if got := agentIDs(out); code != 0 || !slices.Equal(got, ids[:130]) || first.NextCursor != ids[129] {
		t.Fatalf("agent list --limit 130: exit %d, %d agents, next %q; want the first 130 and the cursor after them", code, len(got), first.NextCursor)
	}
	out, _, code = cli(t, nil, "agent", "list", srv, "--cursor", first.NextCursor)
	if got := agentIDs(out); code != 0 || !slices.Equal(got, ids[130:]) {
		t.Errorf("agent list --cursor: exit %d, %d agents; want the other %d", code, len(got), n-130)
	}
	if _, errOut, code := cli(t, nil, "agent", "list", srv, "--limit", "-1"); code != 2 || !strings.Contains(errOut, "--limit") {
		t.Errorf("agent list --limit -1: exit %d, %q; want 2 and a word on --limit", code, errOut)
	}
	if _, errOut, code := cli(t, nil, "agent", "list", srv, "--cursor", "nonsense"); code != 1 || !strings.Contains(errOut, "invalid_parameter") {
		t.Errorf("agent list --cursor nonsense: exit %d, %q; want 1 and invalid_parameter", code, errOut)
	}

	out, _, code = cli(t, nil, "keys", "list", srv)
	var got []string
	for _, k := range decodeJSON[api.KeyList](t, out).Keys {
		got = append(got, k.ID)
	}
	if code != 0 || !slices.Equal(got, keyIDs) {
		t.Errorf("keys list: exit %d, %d keys; want all %d", code, len(got), len(keyIDs))
	}
}
