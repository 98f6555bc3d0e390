package webui

import (
	"crypto/hmac"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/store"
)

func csrfEqual(want, got string) bool {
	return want != "" && hmac.Equal([]byte(want), []byte(got))
}

// next is where to go after logging in: a page of ours, never elsewhere.
func next(raw string) string {
	if !ours(raw) {
		return "/ui/"
	}
	return raw
}

// ours reports whether raw, as a redirect's Location, stays on a page of
// ours. Its path must start with /ui/ and hold no '%': a browser reads
// %2e%2e as "..", so /ui/%2e%2e/oauth/authorize would leave the pages
// (for an OAuth client's redirect_uri, say). No '\' (a browser reads it
// as '/'), no "..", no control character (a browser drops a tab or a
// line break, which would join ". ." into "..").
func ours(raw string) bool {
	path := raw
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if !strings.HasPrefix(path, "/ui/") || strings.Contains(path, "..") || strings.ContainsAny(path, "%\\") {
		return false
	}
	for _, ch := range raw {
		if ch < 0x20 || ch == 0x7f {
			return false
		}
	}
	return true
}

type loginData struct{ Next string }

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if s, ok := u.sessions.get(c.Value); ok && u.stillGood(r.Context(), s.principal) == nil {
			http.Redirect(w, r, next(r.URL.Query().Get("next")), http.StatusSeeOther) //nolint:gosec // G710: next keeps /ui/ paths only
			return
		}
	}
	tok := preToken(u.csrfKey, u.csrfCookieValue(w, r))
	u.render(w, http.StatusOK, "login", view{Title: "Log in", CSRF: tok, Data: loginData{Next: next(r.URL.Query().Get("next"))}})
}

// login trades an API key for a session. The key is checked as the API
// checks it, then forgotten: the session holds its principal only.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	again := func(status int, msg string) {
		tok := preToken(u.csrfKey, u.csrfCookieValue(w, r))
		u.render(w, status, "login", view{Title: "Log in", CSRF: tok, Error: msg, Data: loginData{Next: next(r.PostFormValue("next"))}})
	}
	if !u.checkPreToken(r) {
		again(http.StatusForbidden, "The form's security token is missing or wrong (cookies must be on). Try again.")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	p, err := u.svc.Authenticate(r.Context(), key, true)
	if err == nil && (p.Actor.Type != domain.ActorKey && p.Actor.Type != domain.ActorAdminEnv) {
		err = errNotAKey
	}
	if err != nil {
		// Audited as the API audits a bad credential; the key is never
		// repeated, in the page or the log.
		u.svc.RecordRefusal(service.Refusal{Actor: domain.Actor{Type: domain.ActorAnonymous}, Route: "ui.login",
			Status: http.StatusUnauthorized, Code: "invalid_key", Reason: "POST /ui/login: the dashboard refused the key"})
		again(http.StatusUnauthorized, "That is not a valid API key.")
		return
	}
	id := u.sessions.create(p)
	u.setCookie(w, r, sessionCookie, id, int(sessionMax/time.Second))
	u.log.Info("dashboard login", "key", p.Actor.ID, "roles", strings.Join(p.Roles, ","))
	http.Redirect(w, r, next(r.PostFormValue("next")), http.StatusSeeOther) //nolint:gosec // G710: next keeps /ui/ paths only
}

var errNotAKey = &notAKey{}

type notAKey struct{}

func (*notAKey) Error() string { return "an agent's credential cannot log into the dashboard" }

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if s, ok := u.sessions.get(c.Value); ok && !csrfEqual(s.csrf, r.PostFormValue("csrf")) {
			u.errorPage(w, r, http.StatusForbidden, "Refused", "The form's security token is missing or wrong.")
			return
		}
		u.sessions.end(c.Value)
	}
	u.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// approvalRow is a pending approval on the dashboard.
type approvalRow struct {
	api.Approval
	Left string
}

type agentRow struct {
	api.Agent
	Trust string
}

type homeData struct {
	Approvals       []approvalRow
	ApprovalsDenied bool
	Agents          []agentRow
	AgentsDenied    bool
	Query, Status   string
	NextCursor      string
}

// home is the dashboard: pending approvals first, then the agents.
func (u *UI) home(w http.ResponseWriter, r *http.Request, c current) {
	ctx := r.Context()
	v := u.base(c, "Dashboard", "home")
	q := r.URL.Query()
	d := homeData{Query: strings.TrimSpace(q.Get("q")), Status: q.Get("status")}
	v.Flash = flash(q.Get("done"))
	if u.can(c.principal, "approvals.list") {
		list, err := u.svc.ListApprovals(ctx, domain.ApprovalPending, "", "", service.PageQuery{Limit: "100"})
		if err != nil {
			u.failure(w, r, err)
			return
		}
		now := u.now()
		for _, a := range list.Approvals {
			d.Approvals = append(d.Approvals, approvalRow{Approval: a, Left: left(now, a.ExpiresAt.Time)})
		}
	} else {
		d.ApprovalsDenied = true
	}
	if u.can(c.principal, "agents.list") {
		if d.Query != "" && store.WellFormedAgentID(d.Query) {
			http.Redirect(w, r, "/ui/agents/"+url.PathEscape(d.Query), http.StatusSeeOther)
			return
		}
		list, err := u.svc.ListAgents(ctx, d.Query, d.Status, service.PageQuery{Limit: "50", Cursor: q.Get("cursor")})
		if err != nil {
			u.failure(w, r, err)
			return
		}
		d.NextCursor = list.NextCursor
		canTrust := u.can(c.principal, "agents.trust")
		for _, a := range list.Agents {
			row := agentRow{Agent: a}
			if canTrust {
				if t, err := u.svc.AgentTrust(ctx, a.ID); err == nil {
					row.Trust = t.Level
				}
			}
			d.Agents = append(d.Agents, row)
		}
	} else {
		d.AgentsDenied = true
	}
	v.Data = d
	u.render(w, http.StatusOK, "home", v)
}

// flash is the message after a redirect: a fixed text per outcome, never
// the query's words.
func flash(done string) string {
	op, id, _ := strings.Cut(done, ":")
	if !store.WellFormedID("apr_", id) && !store.WellFormedAgentID(id) {
		return ""
	}
	switch op {
	case "approved":
		return "Approved " + id + "."
	case "denied":
		return "Denied " + id + "."
	case "revoked":
		return "Revoked " + id + "."
	case "resumed":
		return "Resumed " + id + "."
	}
	return ""
}

type delegationRow struct {
	api.Delegation
	Direction, Other string
}

type agentData struct {
	Agent       api.Agent
	Trust       *api.Trust
	Effective   []api.EffectivePermission
	Delegations []delegationRow
	Decisions   []api.AuditEntry
	Anomalies   []api.Anomaly
	Approvals   []approvalRow
}

// agentPage is one agent: what it may do, who delegated to it and to
// whom it delegated, its recent decisions and anomalies. Each part shows
// only if the key may read it.
func (u *UI) agentPage(w http.ResponseWriter, r *http.Request, c current) {
	if !u.can(c.principal, "agents.get") {
		u.refuse(w, r, c, "agents.get")
		return
	}
	ctx := r.Context()
	id := r.PathValue("id")
	a, err := u.svc.GetAgent(ctx, id)
	if err != nil {
		u.failure(w, r, err)
		return
	}
	d := agentData{Agent: a}
	if u.can(c.principal, "agents.trust") {
		if t, err := u.svc.AgentTrust(ctx, id); err == nil {
			d.Trust = &t
		}
	}
	if u.can(c.principal, "agents.effective_permissions") {
		if d.Effective, err = u.svc.EffectivePermissions(ctx, id); err != nil {
			u.failure(w, r, err)
			return
		}
	}
	if u.can(c.principal, "agents.delegations") {
		list, err := u.svc.ListDelegations(ctx, id, service.PageQuery{Limit: "100"})
		if err != nil {
			u.failure(w, r, err)
			return
		}
		for _, dl := range list.Delegations {
			row := delegationRow{Delegation: dl, Direction: "in", Other: dl.FromAgent}
			if dl.FromAgent == id {
				row.Direction, row.Other = "out", dl.ToAgent
			}
			d.Delegations = append(d.Delegations, row)
		}
	}
	if u.can(c.principal, "audit.query") {
		page, err := u.svc.QueryAudit(ctx, service.AuditQuery{AgentID: id, Kind: domain.KindDecision, Limit: "20"})
		if err != nil {
			u.failure(w, r, err)
			return
		}
		d.Decisions = page.Entries
	}
	if u.can(c.principal, "anomalies.list") {
		list, err := u.svc.ListAnomalies(ctx, service.AnomalyQuery{AgentID: id, Page: service.PageQuery{Limit: "20"}})
		if err != nil {
			u.failure(w, r, err)
			return
		}
		d.Anomalies = list.Anomalies
	}
	if u.can(c.principal, "approvals.list") {
		list, err := u.svc.ListApprovals(ctx, domain.ApprovalPending, "", id, service.PageQuery{Limit: "50"})
		if err != nil {
			u.failure(w, r, err)
			return
		}
		for _, ap := range list.Approvals {
			d.Approvals = append(d.Approvals, approvalRow{Approval: ap, Left: left(u.now(), ap.ExpiresAt.Time)})
		}
	}
	v := u.base(c, "Agent "+a.Name, "agents")
	v.Flash = flash(r.URL.Query().Get("done"))
	v.Data = d
	u.render(w, http.StatusOK, "agent", v)
}

// agentAction revokes or resumes an agent (admin).
func (u *UI) agentAction(w http.ResponseWriter, r *http.Request, c current) {
	id := r.PathValue("id")
	var err error
	switch op := r.PathValue("op"); op {
	case "revoke":
		if !u.can(c.principal, "agents.revoke") {
			u.refuse(w, r, c, "agents.revoke")
			return
		}
		_, err = u.svc.RevokeAgent(r.Context(), id)
	case "resume":
		if !u.can(c.principal, "agents.resume") {
			u.refuse(w, r, c, "agents.resume")
			return
		}
		_, err = u.svc.ResumeAgent(r.Context(), id)
	default:
		u.errorPage(w, r, http.StatusNotFound, "Not found", "No such action.")
		return
	}
	if err != nil {
		u.failure(w, r, err)
		return
	}
	done := map[string]string{"revoke": "revoked", "resume": "resumed"}[r.PathValue("op")]
	http.Redirect(w, r, "/ui/agents/"+url.PathEscape(id)+"?done="+done+":"+url.QueryEscape(id), http.StatusSeeOther)
}

// resolve approves or denies from the dashboard, as the logged-in key.
func (u *UI) resolve(w http.ResponseWriter, r *http.Request, c current) {
	op := r.PathValue("op")
	route := map[string]string{"approve": "approvals.approve", "deny": "approvals.deny"}[op]
	if route == "" {
		u.errorPage(w, r, http.StatusNotFound, "Not found", "No such action.")
		return
	}
	if !u.can(c.principal, route) {
		u.refuse(w, r, c, route)
		return
	}
	id := r.PathValue("id")
	if _, err := u.svc.ResolveApproval(r.Context(), id, op == "approve", api.ResolveApprovalRequest{}); err != nil {
		u.failure(w, r, err)
		return
	}
	back := "/ui/"
	if ret := r.PostFormValue("return"); strings.HasPrefix(ret, "/ui/agents/") && ours(ret) && !strings.ContainsAny(ret, "?#") {
		back = ret
	}
	http.Redirect(w, r, back+"?done="+map[string]string{"approve": "approved", "deny": "denied"}[op]+":"+url.QueryEscape(id), http.StatusSeeOther)
}

type auditData struct {
	Entries []api.AuditEntry
	Q       service.AuditQuery
	// Query is the filters as a query string, for the export and paging
	// links: url.Values.Encode escapes every value, and the template must
	// not escape its '&' and '=' again (the links would drop the filters).
	Query      template.URL
	NextCursor string
}

func auditQueryOf(r *http.Request) service.AuditQuery {
	q := r.URL.Query()
	return service.AuditQuery{AgentID: q.Get("agentId"), UserID: q.Get("userId"), Result: q.Get("result"),
		Since: q.Get("since"), Until: q.Get("until"), Kind: q.Get("kind"), Action: q.Get("action"), Cursor: q.Get("cursor"), Limit: "50"}
}

func (u *UI) auditPage(w http.ResponseWriter, r *http.Request, c current) {
	if !u.can(c.principal, "audit.query") {
		u.refuse(w, r, c, "audit.query")
		return
	}
	q := auditQueryOf(r)
	page, err := u.svc.QueryAudit(r.Context(), q)
	if err != nil {
		u.failure(w, r, err)
		return
	}
	filters := url.Values{}
	for k, v := range map[string]string{"agentId": q.AgentID, "userId": q.UserID, "result": q.Result, "since": q.Since,
		"until": q.Until, "kind": q.Kind, "action": q.Action} {
		if v != "" {
			filters.Set(k, v)
		}
	}
	v := u.base(c, "Audit log", "audit")
	//nolint:gosec // G203: Encode escapes every key and value; nothing else is in it
	v.Data = auditData{Entries: page.Entries, Q: q, Query: template.URL(filters.Encode()), NextCursor: page.NextCursor}
	u.render(w, http.StatusOK, "audit", v)
}
