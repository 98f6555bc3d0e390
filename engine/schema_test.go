package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/kavach-dev/kavach/domain"
)

// schemaCheck validates documents against the JSON schemas the policies
// declare for their input and data (schemas/, named in the packages'
// METADATA), with OPA's own validator (json.match_schema).
type schemaCheck struct{ pq rego.PreparedEvalQuery }

func newSchemaCheck(t *testing.T) schemaCheck {
	t.Helper()
	pq, err := rego.New(rego.Query(`[ok, errors] := json.match_schema(input.doc, input.schema)`)).PrepareForEval(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return schemaCheck{pq}
}

// errors returns why doc does not match the schema file (nil if it does).
func (s schemaCheck) errors(t *testing.T, doc any, schemaFile string) []any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "schemas", schemaFile))
	if err != nil {
		t.Fatal(err)
	}
	var schema any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("%s: %v", schemaFile, err)
	}
	rs, err := s.pq.Eval(t.Context(), rego.EvalInput(map[string]any{"doc": doc, "schema": schema}))
	if err != nil || len(rs) != 1 {
		t.Fatalf("match %s: %v, %v", schemaFile, rs, err)
	}
	if rs[0].Bindings["ok"] == true {
		return nil
	}
	errs, _ := rs[0].Bindings["errors"].([]any)
	if len(errs) == 0 {
		errs = []any{"no match"}
	}
	return errs
}

// The data the sync writes (and bundles carry) matches schemas/data.
func TestDataMatchesSchema(t *testing.T) {
	now := time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)
	exp := now.Add(time.Hour)
	every := domain.Constraints{
		RequireApproval: &yes, MaxCallsPerHour: 5,
		TimeWindow:         &domain.TimeWindow{Start: "09:00", End: "17:00", Timezone: "Europe/Berlin", Days: []string{"mon", "fri"}},
		IPAllowlist:        []string{"10.0.0.0/8", "192.168.1.50", "2001:db8::1", "::ffff:10.1.2.3"},
		AllowedArgPatterns: []string{`^src/.*\.ts$`},
	}
	orchKey := PermissionKey("mcp:*", []string{"read", "write"})
	src := memSource{
		agents: []domain.Agent{
			{ID: "orch", OwnerID: "u1", Status: domain.StatusActive, TokenHash: "h1", ExpiresAt: &exp, Permissions: []domain.Permission{
				{Resource: "mcp:*", Actions: []string{"read", "write"}, Constraints: every},
				{Resource: "*", Actions: []string{"*"}},
				{Resource: "admin:*:delete", Actions: []string{"purge", "read"}, Constraints: domain.Constraints{TimeWindow: &domain.TimeWindow{Start: "22:00", End: "02:00"}}},
			}},
			{ID: "worker", OwnerID: "u1", Status: domain.StatusActive, TokenHash: "h2", Incoming: []string{"d1"},
				Trust: domain.Trust{Score: 97, Level: domain.TrustElevated, ComputedAt: now}},
			{ID: "helper", OwnerID: "u2", Status: domain.StatusRevoked, TokenHash: "h3", Incoming: []string{"d2"},
				Trust: domain.Trust{Score: 0, Level: domain.TrustUntrusted, ComputedAt: now}},
			{ID: "paused", OwnerID: "u2", Status: domain.StatusSuspended, TokenHash: "h4", Trust: domain.Trust{Score: 61, Level: domain.TrustStandard},
				Permissions: []domain.Permission{{Resource: "db:*", Actions: []string{"drop"},
					Constraints: domain.Constraints{MinTrustLevel: domain.TrustTrusted, RequireApprovalBelow: domain.TrustElevated}}}},
			{ID: "lapsed", OwnerID: "u2", Status: domain.StatusExpired, TokenHash: "h5", ExpiresAt: &now},
		},
		delegations: []domain.Delegation{
			{ID: "d1", FromAgent: "orch", ToAgent: "worker", Status: domain.StatusActive, ExpiresAt: exp, Depth: 1, MaxDepth: 3,
				Permissions: []domain.Grant{{Resource: "mcp:github:*", Actions: []string{"read"}, CoveredBy: orchKey, Chain: []domain.Link{},
					Constraints: domain.Constraints{MaxCallsPerHour: 2, MinTrustLevel: domain.TrustLimited, RequireApprovalBelow: domain.TrustTrusted}}}},
			{ID: "d2", FromAgent: "worker", ToAgent: "helper", Status: domain.StatusRevoked, ExpiresAt: now, Depth: 2, MaxDepth: 3,
				Permissions: []domain.Grant{{Resource: "mcp:github:repos", Actions: []string{"read"}, CoveredBy: PermissionKey("mcp:github:*", []string{"read"}),
					Chain:     []domain.Link{{DelegationID: "d1", Index: 0}},
					Inherited: []domain.Inherited{{Key: PermissionKey("mcp:github:*", []string{"read"}), Constraints: domain.Constraints{MaxCallsPerHour: 2, IPAllowlist: []string{"10.0.0.1"}}}}}}},
		},
		approvals: []domain.Approval{
			{ID: "a1", AgentID: "orch", Action: "write", Resource: "mcp:deploy", StoredStatus: domain.ApprovalPending, ExpiresAt: exp},
			{ID: "a2", AgentID: "orch", Action: "write", Resource: "mcp:deploy", StoredStatus: domain.ApprovalApproved, ExpiresAt: exp},
			{ID: "a3", AgentID: "orch", Action: "write", Resource: "mcp:deploy", StoredStatus: domain.ApprovalDenied, ExpiresAt: exp},
			{ID: "a4", AgentID: "orch", Action: "write", Resource: "mcp:deploy", StoredStatus: domain.ApprovalUsed, ExpiresAt: now},
		},
	}
	docs, _, err := Documents(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ast.JSON(docs)
	if err != nil {
		t.Fatal(err)
	}
	data := v.(map[string]any)
	check := newSchemaCheck(t)
	for _, name := range []string{"agents", "tokens", "delegations", "approvals"} {
		doc := data[name]
		if m, _ := doc.(map[string]any); len(m) == 0 {
			t.Fatalf("data.kavach.%s is empty; the test should fill it", name)
		}
		if errs := check.errors(t, doc, filepath.Join("data", name+".json")); errs != nil {
			t.Errorf("data.kavach.%s does not match schemas/data/%s.json: %v", name, name, errs)
		}
	}
	if len(data) != 4 {
		t.Errorf("data.kavach has %d documents; schemas/data describes 4", len(data))
	}
	// The check can fail: a level that is none, a misspelt field do not match.
	paused := data["agents"].(map[string]any)["paused"].(map[string]any)
	paused["trust"] = map[string]any{"level": "sovereign", "score": 61}
	if check.errors(t, data["agents"], filepath.Join("data", "agents.json")) == nil {
		t.Error("an agent with an unknown trust level matches schemas/data/agents.json")
	}
	delete(paused, "trust")
	if check.errors(t, data["agents"], filepath.Join("data", "agents.json")) == nil {
		t.Error("an agent without trust matches schemas/data/agents.json")
	}
	agent := data["agents"].(map[string]any)["orch"].(map[string]any)
	agent["ownerID"] = agent["ownerId"]
	if check.errors(t, data["agents"], filepath.Join("data", "agents.json")) == nil {
		t.Error("an agent with a misspelt field matches schemas/data/agents.json")
	}
}

// The input Decide evaluates (and gives stock OPA callers) matches
// schemas/input.json; the delegation check's, schemas/delegation_input.json.
func TestInputsMatchSchema(t *testing.T) {
	now := time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)
	check := newSchemaCheck(t)
	for _, in := range []Input{
		{AgentID: "agt_1", Action: "read", Resource: "mcp:github:repos", Now: now},
		{TokenHash: "ab12", Action: "write", Resource: "x", Now: now, IP: "10.1.2.3", ApprovalID: "apr_1",
			Arguments: json.RawMessage(`{"path": "src/a.ts", "n": [1, {"deep": true}]}`),
			Calls:     map[string]int{"p_1": 3, "p_2": 0}, ScopeKeys: []string{"p_1"}},
		{AgentID: "agt_1", Action: "read", Resource: "x", Now: now, Arguments: json.RawMessage(`null`), ScopeKeys: []string{}},
	} {
		doc, err := in.InputDocument()
		if err != nil {
			t.Fatal(err)
		}
		if errs := check.errors(t, doc, "input.json"); errs != nil {
			t.Errorf("input of %+v does not match schemas/input.json: %v", in, errs)
		}
	}
	if check.errors(t, map[string]any{"action": "read", "resource": "x", "actoin": "read"}, "input.json") == nil {
		t.Error("an input with a misspelt field matches schemas/input.json")
	}
	req := DelegationRequest{FromAgent: "orch", ToAgent: "worker", MaxDepth: 2, Now: now.UnixNano(), Permissions: []domain.Permission{
		{Resource: "mcp:github:*", Actions: []string{"read"}},
		{Resource: "mcp:slack:*", Actions: []string{"post"}, Constraints: domain.Constraints{MaxCallsPerHour: 3}},
	}}
	raw, err := json.Marshal(req) // as CheckDelegation encodes it
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if errs := check.errors(t, doc, "delegation_input.json"); errs != nil {
		t.Errorf("delegation input %s does not match schemas/delegation_input.json: %v", raw, errs)
	}
}
