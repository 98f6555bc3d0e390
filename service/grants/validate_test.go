package grants

import (
	"context"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service/policy"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/store"
)

type noKeys struct{}

func (noKeys) LoadKeys(context.Context) error { return nil }
func (noKeys) Put(domain.APIKey)              {}

// The agents MCP OAuth grants create and widen go through deny_agent like
// any other: refused, nothing is written (an update is rolled back inside
// its transaction) and the refusal is audited with the approver.
func TestGrantAgentsAreValidated(t *testing.T) {
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, store.Options{URL: filepath.Join(t.TempDir(), "kavach.db"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	eng, err := engine.New(ctx, map[string]string{"v.rego": "package kavach.ext\n\n" +
		"deny_agent contains sprintf(\"%s: no wildcards (%s)\", [input.operation, p.resource]) if {\n\tsome p in input.agent.permissions\n\t\"*\" in split(p.resource, \":\")\n}\n"})
	if err != nil {
		t.Fatal(err)
	}
	rep := replica.New(st, eng, noKeys{}, time.Second, time.Now, log)
	if err := rep.Load(ctx); err != nil {
		t.Fatal(err)
	}
	g := New(st, rep, policy.NewValidator(eng, st, time.Now, log), 0, time.Now, log)
	approver := domain.Actor{Type: domain.ActorKey, ID: "key_login", Name: "login app"}
	ctx = store.WithActor(ctx, approver)
	refused := func(what string, err error, op string) {
		t.Helper()
		if e, ok := apperr.As(err); !ok || e.Code != policy.CodeViolation || e.Kind != apperr.Unprocessable {
			t.Fatalf("%s = %v; want 422 policy_violation", what, err)
		}
		rows, _, err := st.QueryAudit(ctx, store.AuditFilter{Action: "agent." + op, Result: domain.ResultDenied, Limit: 10})
		if err != nil || len(rows) == 0 || rows[0].Actor != approver || rows[0].Code != policy.CodeViolation || rows[0].OwnerID != "user-1" {
			t.Fatalf("audit of the refused %s = %+v, %v; want a denied row by the approver", op, rows, err)
		}
	}

	wild := []api.Permission{{Resource: "mcp:*", Actions: []string{"read"}}}
	_, err = g.GrantAgent(ctx, "client-1", "c", "user-1", wild)
	refused("a grant of mcp:*", err, "create")
	if list, _, err := st.ListAgents(ctx, store.AgentFilter{}, store.Page{Limit: 10}); err != nil || len(list) != 0 {
		t.Fatalf("agents after a refused grant = %+v, %v", list, err)
	}

	id, err := g.GrantAgent(ctx, "client-1", "c", "user-1", []api.Permission{{Resource: "mcp:github:repos", Actions: []string{"read"}}})
	if err != nil {
		t.Fatal(err)
	}
	before, err := st.GetAgent(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.GrantAgent(ctx, "client-1", "c", "user-1", wild)
	refused("widening a grant with mcp:*", err, "update")
	if after, err := st.GetAgent(ctx, id); err != nil || !reflect.DeepEqual(after, before) {
		t.Errorf("grant agent after a refused update = %+v, %v; want it unchanged: %+v", after, err, before)
	}
	if rows, _, err := st.QueryAudit(ctx, store.AuditFilter{Action: "agent.update", AgentID: id, Limit: 10}); err != nil || len(rows) != 1 || rows[0].Result != domain.ResultDenied {
		t.Errorf("agent.update rows = %+v, %v; want only the refusal", rows, err)
	}
}
