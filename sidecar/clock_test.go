package sidecar_test

import (
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/service"
)

// Behaviour that depends on time passing, with a test clock shared by the
// store and the service.

func TestRateLimitWindowSlides(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{
		{Resource: "api:*", Actions: []string{"call"}, Constraints: map[string]any{"maxCallsPerHour": 2}}}})
	call := func() string {
		t.Helper()
		res, err := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: a.ID, Action: "call", Resource: "api:x"}, "")
		if err != nil {
			t.Fatal(err)
		}
		return res.Code
	}
	if c1, c2, c3 := call(), call(), call(); c1 != "allowed" || c2 != "allowed" || c3 != "rate_limited" {
		t.Fatalf("three calls under a limit of 2: %s %s %s", c1, c2, c3)
	}
	e.clock.Add(30 * time.Minute)
	if c := call(); c != "rate_limited" {
		t.Errorf("after 30 minutes: %s; want rate_limited (the window slides, it does not reset)", c)
	}
	e.clock.Add(31 * time.Minute)
	if c1, c2 := call(), call(); c1 != "allowed" || c2 != "allowed" {
		t.Errorf("61 minutes after the first calls: %s %s; want both allowed", c1, c2)
	}
	if c := call(); c != "rate_limited" {
		t.Errorf("third call in the new hour: %s; want rate_limited", c)
	}
}

func TestApprovalExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{ApprovalTTL: time.Minute})
	ctx := t.Context()
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{
		{Resource: "db:prod", Actions: []string{"drop"}, Constraints: map[string]any{"requireApproval": true}}}})
	req := api.AuthorizeRequest{AgentID: a.ID, Action: "drop", Resource: "db:prod"}
	res, err := e.cl.Authorize(ctx, req, "")
	if err != nil || res.ApprovalID == "" {
		t.Fatalf("first call = %+v, %v", res, err)
	}
	appr, _ := e.cl.GetApproval(ctx, res.ApprovalID)
	if got := appr.ExpiresAt.Sub(appr.CreatedAt.Time); got != time.Minute {
		t.Errorf("approval lifetime = %v; want approval.ttl (1m)", got)
	}
	e.clock.Add(2 * time.Minute)
	_, err = e.cl.ResolveApproval(ctx, res.ApprovalID, true, api.ResolveApprovalRequest{RespondedBy: "alice"})
	if apiErr := asClientError(err); apiErr == nil || apiErr.Status != 409 || apiErr.Code != "approval_expired" {
		t.Errorf("approving an expired request = %v; want 409 approval_expired", err)
	}
	req.ApprovalID = res.ApprovalID
	if res, _ := e.cl.Authorize(ctx, req, ""); res.Code != "approval_expired" {
		t.Errorf("using an expired request: %+v; want approval_expired", res)
	}
	expired, _ := e.cl.ListAllApprovals(ctx, client.ApprovalFilter{Status: "expired"}, 0)
	if len(expired.Approvals) != 1 || expired.Approvals[0].Status != "expired" {
		t.Errorf("expired approvals = %+v; want the one", expired)
	}

	// Approved but not used in time: expired too.
	req.ApprovalID = ""
	res, _ = e.cl.Authorize(ctx, req, "")
	if _, err := e.cl.ResolveApproval(ctx, res.ApprovalID, true, api.ResolveApprovalRequest{RespondedBy: "alice"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * time.Minute)
	req.ApprovalID = res.ApprovalID
	if res, _ := e.cl.Authorize(ctx, req, ""); res.Code != "approval_expired" {
		t.Errorf("using an approved request after its expiry: %+v; want approval_expired", res)
	}
}

func TestDelegationExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	orch := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "orch", Permissions: []api.Permission{{Resource: "docs:*", Actions: []string{"read"}}}})
	sub := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "sub", Permissions: []api.Permission{}})
	exp := e.clock.Now().Add(time.Hour)
	if _, err := e.cl.Delegate(ctx, api.DelegateRequest{FromAgent: orch.ID, ToAgent: sub.ID, ExpiresAt: api.NewTimePtr(&exp),
		Permissions: []api.Permission{{Resource: "docs:a", Actions: []string{"read"}}}}); err != nil {
		t.Fatal(err)
	}
	code := func() string {
		res, err := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: sub.ID, Action: "read", Resource: "docs:a"}, "")
		if err != nil {
			t.Fatal(err)
		}
		return res.Code
	}
	if c := code(); c != "allowed" {
		t.Fatalf("within the delegation: %s", c)
	}
	e.clock.Add(time.Hour)
	if c := code(); c != "delegation_expired" {
		t.Errorf("after the delegation's expiry: %s; want delegation_expired", c)
	}
	ds, _ := e.cl.ListAllDelegations(ctx, sub.ID, client.Page{}, 0)
	if len(ds.Delegations) != 1 || ds.Delegations[0].Status != "expired" {
		t.Errorf("delegation status = %+v; want expired", ds)
	}
}
