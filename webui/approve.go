package webui

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/store"
)

// The page of an approval's signed link: whoever holds the link is taken
// for the approval's owner (the link went to them alone), and may decide
// it once, while it is pending. The link itself is checked against the
// approval as stored on every use: a forged or altered signature, another
// approval's link, a decided or expired approval, each shows why and
// offers no decision.

type approvalData struct {
	Approval  api.Approval
	Agent     *api.Agent
	Trust     *api.Trust
	Anomalies []api.Anomaly
	Reason    string
	Left      string
	// Decided is the outcome page's: the status the approval now has.
	Decided string
}

// linkApproval reads the approval a link names and checks the link. On
// failure it has answered with a page saying why.
func (u *UI) linkApproval(w http.ResponseWriter, r *http.Request) (api.Approval, bool) {
	id, sig := r.PathValue("id"), r.PathValue("sig")
	ctx := r.Context()
	a, err := u.svc.GetApproval(ctx, id)
	if err != nil || !u.links.Valid(a.ID, a.OwnerID, a.ExpiresAt.Time, sig) {
		if err != nil && !isNotFound(err) {
			u.failure(w, r, err)
			return api.Approval{}, false
		}
		u.svc.RecordRefusal(service.Refusal{Actor: domain.Actor{Type: domain.ActorAnonymous}, Route: "ui.approve",
			Status: http.StatusForbidden, Code: "invalid_link", Reason: r.Method + " " + ApprovePath + "{id}/{signature}: a link that is not valid for approval " + named(id)})
		u.errorPage(w, r, http.StatusForbidden, "This link is not valid",
			"The link is not one Kavach signed for a pending approval, or it was altered. Nothing was changed.")
		return api.Approval{}, false
	}
	return a, true
}

func isNotFound(err error) bool {
	var e *apperr.Error
	return errors.As(err, &e) && e.Kind == apperr.NotFound
}

// named is an approval ID from a path for the audit row: a well-formed
// ID as is, anything else (the caller's free text) not repeated.
func named(id string) string {
	if store.WellFormedID("apr_", id) {
		return id
	}
	return "(a malformed ID)"
}

// closed explains why a validly linked approval takes no decision.
func (u *UI) closed(a api.Approval) string {
	switch {
	case a.Status == domain.ApprovalExpired || a.Status == domain.ApprovalPending && !u.now().Before(a.ExpiresAt.Time):
		return "This request expired at " + a.ExpiresAt.UTC().Format("2006-01-02 15:04:05 UTC") + " without a decision; the agent must ask again."
	case a.Status == domain.ApprovalPending:
		return ""
	}
	by := a.RespondedByName
	if a.OnBehalfOf != "" {
		by = a.OnBehalfOf + " " + by
	}
	return "This request was already decided: " + a.Status + " by " + by + ". A link decides once."
}

func (u *UI) approvalView(ctx context.Context, a api.Approval) approvalData {
	d := approvalData{Approval: a, Left: left(u.now(), a.ExpiresAt.Time)}
	if ag, err := u.svc.GetAgent(ctx, a.AgentID); err == nil {
		d.Agent = &ag
	}
	if t, err := u.svc.AgentTrust(ctx, a.AgentID); err == nil {
		d.Trust = &t
	}
	if list, err := u.svc.ListAnomalies(ctx, service.AnomalyQuery{AgentID: a.AgentID, Page: service.PageQuery{Limit: "5"}}); err == nil {
		d.Anomalies = list.Anomalies
	}
	// The reason is the decision's that opened the request.
	since := a.CreatedAt.Add(-time.Second).UTC().Format(time.RFC3339Nano)
	until := a.CreatedAt.Add(time.Second).UTC().Format(time.RFC3339Nano)
	if page, err := u.svc.QueryAudit(ctx, service.AuditQuery{AgentID: a.AgentID, Kind: domain.KindDecision, Action: a.Action,
		Since: since, Until: until, Limit: "50"}); err == nil {
		for _, e := range page.Entries {
			if e.ApprovalID == a.ID {
				d.Reason = e.Reason
				break
			}
		}
	}
	return d
}

func (u *UI) approvalPage(w http.ResponseWriter, r *http.Request) {
	a, ok := u.linkApproval(w, r)
	if !ok {
		return
	}
	if why := u.closed(a); why != "" {
		u.render(w, http.StatusGone, "message", view{Title: "No decision to take", Error: why})
		return
	}
	tok := preToken(u.csrfKey, u.csrfCookieValue(w, r))
	u.render(w, http.StatusOK, "approve", view{Title: "Approve or deny", CSRF: tok, Data: u.approvalView(r.Context(), a)})
}

// approvalDecide records the owner's decision, "via signed link".
func (u *UI) approvalDecide(w http.ResponseWriter, r *http.Request) {
	a, ok := u.linkApproval(w, r)
	if !ok {
		return
	}
	if !u.checkPreToken(r) {
		u.errorPage(w, r, http.StatusForbidden, "Refused", "The form's security token is missing or wrong (cookies must be on). Open the link again.")
		return
	}
	if why := u.closed(a); why != "" {
		u.render(w, http.StatusGone, "message", view{Title: "No decision to take", Error: why})
		return
	}
	var approve bool
	switch r.PostFormValue("decision") {
	case "approve":
		approve = true
	case "deny":
	default:
		u.errorPage(w, r, http.StatusBadRequest, "No decision", "Choose Approve or Deny.")
		return
	}
	ctx := store.WithActor(r.Context(), domain.Actor{Type: domain.ActorSignedLink, ID: a.OwnerID, Name: "via signed link", OnBehalfOf: a.OwnerID})
	got, err := u.svc.ResolveApproval(ctx, a.ID, approve, api.ResolveApprovalRequest{})
	if err != nil {
		var e *apperr.Error
		if errors.As(err, &e) && e.Kind == apperr.Conflict {
			if cur, err := u.svc.GetApproval(r.Context(), a.ID); err == nil {
				u.render(w, http.StatusGone, "message", view{Title: "No decision to take", Error: u.closed(cur)})
				return
			}
		}
		u.failure(w, r, err)
		return
	}
	u.log.Info("approval decided through its signed link", "approval", got.ID, "status", got.Status, "owner", got.OwnerID)
	d := u.approvalView(r.Context(), got)
	d.Decided = got.Status
	u.render(w, http.StatusOK, "decided", view{Title: "Decision recorded", Data: d})
}
