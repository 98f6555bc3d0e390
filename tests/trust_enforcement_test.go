package tests

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
)

// The policy acts on trust, end to end: a fresh agent (score 50, limited)
// may use a permission that needs limited, and one that needs approval only
// below limited asks nobody; once it probes for resources it never held,
// detection lowers its trust, the level reaches the policy data, and the
// same calls are denied trust_insufficient and sent for approval, within
// the detection bound. Explanations name the level and score.
func TestPolicyEnforcesTrust(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"), "--config", anomalyConfig(t, "  probingThreshold: 5\n"))
	cl := s.adminClient()
	ctx := t.Context()
	a, err := cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "trust-owner", Name: "earner", Permissions: []api.Permission{
		{Resource: "docs:*", Actions: []string{"read"}, Constraints: map[string]any{"minTrustLevel": "limited"}},
		{Resource: "reports:*", Actions: []string{"read"}, Constraints: map[string]any{"requireApproval": "limited"}},
		{Resource: "deploy:production", Actions: []string{"read"}, Constraints: map[string]any{"requireApproval": "trusted"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res := readCall(t, cl, a.ID, "docs:guide"); !res.Allowed {
		t.Fatalf("fresh agent, minTrustLevel limited = %+v; want allowed", res)
	}
	if res := readCall(t, cl, a.ID, "reports:q3"); !res.Allowed {
		t.Fatalf("fresh agent, requireApproval below limited = %+v; want allowed without approval", res)
	}
	if res := readCall(t, cl, a.ID, "deploy:production"); res.Code != "approval_required" || !strings.Contains(res.Reason, "below trusted") {
		t.Fatalf("fresh agent, requireApproval below trusted = %+v; want approval_required naming the level", res)
	}

	// Probing: six resources it never held.
	for i := range 6 {
		if res := readCall(t, cl, a.ID, fmt.Sprintf("secrets:vault-%d", i)); res.Code != "no_permission" {
			t.Fatalf("probe %d = %+v; want no_permission", i, res)
		}
	}
	probed := time.Now()
	var last api.AuthorizeResponse
	took := pollUntil(t, "the probing agent denied trust_insufficient", 2*detectionBound, func() bool {
		last = readCall(t, cl, a.ID, "docs:guide")
		return last.Code == "trust_insufficient"
	})
	t.Logf("trust_insufficient %v after the last probe (%v since)", took, time.Since(probed))
	tr, err := cl.AgentTrust(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Level != "untrusted" || !strings.Contains(last.Reason, "untrusted") || !strings.Contains(last.Reason, "limited") {
		t.Errorf("after probing: trust %+v, decision %+v; want untrusted, the reason naming both levels", tr, last)
	}
	if res := readCall(t, cl, a.ID, "reports:q3"); res.Code != "approval_required" {
		t.Errorf("untrusted agent, requireApproval below limited = %+v; want approval_required", res)
	}

	// ?explain=true names the level and score that decided.
	ex, err := cl.AuthorizeExplained(ctx, api.AuthorizeRequest{AgentID: a.ID, Action: "read", Resource: "docs:guide"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var explanation struct {
		Considered []struct{ Resource, Result, Reason string } `json:"considered"`
	}
	if err := json.Unmarshal(ex.Explanation, &explanation); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range explanation.Considered {
		if c.Resource == "docs:*" && c.Result == "trust_insufficient" && strings.Contains(c.Reason, fmt.Sprintf("score %d", tr.Score)) {
			found = true
		}
	}
	if !found {
		t.Errorf("explanation = %s; want docs:* trust_insufficient naming the score %d", ex.Explanation, tr.Score)
	}
}
