package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kavach-dev/kavach/api"
)

// GET /v1/agents/{id}/effective-permissions gives constraints in one shape,
// the object a permission is written with, for own and delegated entries
// alike; a delegated entry lists the sets it inherits up the chain beside
// it, each with where it comes from. The raw JSON, the Go client and the
// CLI all read so.
func TestEffectivePermissionsConstraintsShape(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	cl := s.adminClient()
	orch := mustCreate(t, cl, constrained("mcp:github:*", map[string]any{"maxCallsPerHour": 10}, "read", "comment"))
	worker, helper := mustCreate(t, cl), mustCreate(t, cl)
	d1, err := delegate(t, cl, orch.ID, worker.ID, 2, constrained("mcp:github:issues", map[string]any{"maxCallsPerHour": 3}, "read", "comment"))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := delegate(t, cl, worker.ID, helper.ID, 2, constrained("mcp:github:issues", map[string]any{"requireApproval": true}, "read"))
	if err != nil {
		t.Fatal(err)
	}

	// The raw JSON: constraints is an object everywhere.
	raw := func(id string) []map[string]any {
		t.Helper()
		resp, err := keyed(adminKey).Get(s.URL + "/v1/agents/" + id + "/effective-permissions")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var body struct{ Permissions []map[string]any }
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &body) != nil {
			t.Fatalf("effective permissions of %s = %d %s", id, resp.StatusCode, b)
		}
		return body.Permissions
	}
	object := func(v any) map[string]any {
		m, _ := v.(map[string]any)
		return m
	}
	if own := raw(orch.ID); len(own) != 1 || !reflect.DeepEqual(object(own[0]["constraints"]), map[string]any{"maxCallsPerHour": 10.0}) ||
		own[0]["inheritedConstraints"] != nil {
		t.Errorf("own permission = %v; want constraints {maxCallsPerHour: 10} and no inheritedConstraints", own)
	}
	del := raw(helper.ID)
	wantInherited := []any{
		map[string]any{"from": orch.ID, "constraints": map[string]any{"maxCallsPerHour": 10.0}},
		map[string]any{"from": d1.ID, "constraints": map[string]any{"maxCallsPerHour": 3.0}},
	}
	if len(del) != 1 || !reflect.DeepEqual(object(del[0]["constraints"]), map[string]any{"requireApproval": true}) ||
		!reflect.DeepEqual(del[0]["inheritedConstraints"], wantInherited) || del[0]["delegationId"] != d2.ID {
		t.Errorf("delegated permission = %v; want constraints {requireApproval: true} and inheritedConstraints %v", del, wantInherited)
	}

	// The Go client decodes it into the typed shape.
	eff, err := cl.EffectivePermissions(t.Context(), helper.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := api.EffectivePermission{Resource: "mcp:github:issues", Actions: []string{"read"},
		Constraints: map[string]any{"requireApproval": true},
		InheritedConstraints: []api.ConstraintSet{
			{From: orch.ID, Constraints: map[string]any{"maxCallsPerHour": 10.0}},
			{From: d1.ID, Constraints: map[string]any{"maxCallsPerHour": 3.0}},
		},
		Source: "delegation", DelegationID: d2.ID, FromAgent: worker.ID, Depth: 2}
	if len(eff.Permissions) != 1 {
		t.Fatalf("EffectivePermissions(helper) = %+v; want one entry", eff)
	}
	got := eff.Permissions[0]
	got.ExpiresAt = nil
	if !reflect.DeepEqual(got, want) || eff.Permissions[0].ExpiresAt == nil {
		t.Errorf("EffectivePermissions(helper) = %+v; want %+v and an expiresAt", eff.Permissions[0], want)
	}

	// The CLI prints the same document.
	out, errOut, code := cli(t, nil, "agent", "permissions", "--server="+s.URL, helper.ID)
	if cliEff := decodeJSON[api.EffectivePermissions](t, out); code != 0 || len(cliEff.Permissions) != 1 ||
		!reflect.DeepEqual(cliEff.Permissions[0].InheritedConstraints, want.InheritedConstraints) {
		t.Errorf("kavach agent permissions = exit %d, %s %s", code, out, errOut)
	}
}
