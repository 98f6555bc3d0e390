package tests

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

// Two sidecars on one SQLite file, the second with room for 4 agents'
// policy data: it decides on 40 agents by ID and by token (reading most of
// them from the database, again and again), follows the first one's
// rotation and revocation of an agent it holds in memory, and reports
// what it read in /metrics. The memory bound is the configured one.
func TestPolicyDataIsBoundedAndFollowsWrites(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db := filepath.Join(dir, "kavach.db")
	cfg := filepath.Join(dir, "small.yaml")
	writeFile(t, cfg, "policies:\n  cachedAgents: 4\n")
	a := start(t, "--database", db)
	b := start(t, "--database", db, "--config", cfg)
	admin := a.adminClient()
	decider := client.New(b.URL).WithAPIKey(b.mintKey(t, "decider", "decider").Key)
	anon := client.New(b.URL)

	type agent struct{ id, token string }
	var agents []agent
	for i := range 40 {
		created, err := admin.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: fmt.Sprint("user-", i), Name: fmt.Sprint("bounded-", i),
			Permissions: []api.Permission{{Resource: fmt.Sprintf("mcp:github:repo-%d", i), Actions: []string{"read"}}}})
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, agent{created.ID, created.Token})
	}
	// b hears of the creates through the change feed; until then an agent
	// it read as absent must not stay absent.
	decide := func(ag agent, i int, byToken bool) api.AuthorizeResponse {
		t.Helper()
		req := api.AuthorizeRequest{Action: "read", Resource: fmt.Sprintf("mcp:github:repo-%d", i)}
		var resp api.AuthorizeResponse
		var err error
		if byToken {
			resp, err = anon.Authorize(ctx, req, ag.token)
		} else {
			req.AgentID = ag.id
			resp, err = decider.Authorize(ctx, req, "")
		}
		var refused *client.Error
		if errors.As(err, &refused) && refused.Status == 401 {
			return api.AuthorizeResponse{Code: refused.Code} // a token that names no agent
		}
		if err != nil {
			t.Fatalf("authorize %s (by token %v): %v", ag.id, byToken, err)
		}
		return resp
	}
	eventually(t, func() bool { return decide(agents[39], 39, false).Allowed })
	for round := range 2 {
		for i, ag := range agents {
			if d := decide(ag, i, round == 1); !d.Allowed {
				t.Fatalf("round %d: agent %d = %+v; want allowed", round, i, d)
			}
			if d := decide(ag, (i+1)%40, round == 1); d.Allowed || d.Code != "no_permission" {
				t.Fatalf("round %d: agent %d on another's resource = %+v; want no_permission", round, i, d)
			}
		}
	}

	// An agent b holds in memory is rotated, then revoked, on a.
	hot := agents[7]
	if d := decide(hot, 7, true); !d.Allowed {
		t.Fatal(d)
	}
	rotated, err := admin.RotateAgent(ctx, hot.id)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return decide(hot, 7, true).Code == "invalid_token" })
	if d := decide(agent{hot.id, rotated.Token}, 7, true); !d.Allowed {
		t.Errorf("the rotated token on b = %+v; want allowed", d)
	}
	if _, err := admin.RevokeAgent(ctx, hot.id); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return decide(hot, 7, false).Code == "agent_revoked" })
	if d := decide(agent{hot.id, rotated.Token}, 7, true); d.Allowed {
		t.Errorf("a revoked agent's token on b = %+v; want denied", d)
	}

	metrics := scrape(t, b)
	entries := metricValue(t, metrics, `kavach_policy_data_entries`)
	fromDB := metricValue(t, metrics, `kavach_policy_data_reads_total{from="database"}`)
	fromMemory := metricValue(t, metrics, `kavach_policy_data_reads_total{from="memory"}`)
	if c := metricValue(t, metrics, `kavach_policy_data_capacity`); c != 4 {
		t.Errorf("kavach_policy_data_capacity = %v; want 4", c)
	}
	// Four kinds of document and absences, four of each at most.
	if entries > 20 || fromDB < 80 || fromMemory == 0 {
		t.Errorf("b's policy data: %v entries, %v reads from the database, %v from memory; want at most 20, at least 80, some", entries, fromDB, fromMemory)
	}
}

// eventually polls ok for up to 10 s.
func eventually(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape is GET /metrics with the admin key; anything but 200 fails t.
func scrape(t *testing.T, s *sidecar) string {
	t.Helper()
	resp, err := keyed(adminKey).Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s, %v", resp.StatusCode, body, err)
	}
	return string(body)
}

func metricValue(t *testing.T, metrics, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("/metrics lacks %s:\n%s", name, metrics)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
