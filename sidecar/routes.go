package sidecar

import (
	"fmt"
	"net/http"
)

// guarded runs the guard (credential, API policy, content type) before h,
// with the request's path values set.
func (s *Server) guarded(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r, ok := s.guard(w, r, route)
		if !ok {
			return
		}
		if err := checkURL(r); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := checkQuery(route, r); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.checkBody(r, route); err != nil {
			s.fail(w, r, err)
			return
		}
		h(w, r)
	}
}

// Route is one endpoint of the API: Name is how the API policy
// (policies/api) knows it.
type Route struct {
	Name    string
	Pattern string
	handler http.HandlerFunc
}

// routes are every endpoint the main listener serves. The API policy must
// decide each of them (New refuses to start otherwise), and a test walks
// this list against every role.
func (s *Server) routeTable() []Route {
	rs := []Route{
		{"agents.create", "POST /v1/agents", s.createAgent},
		{"agents.list", "GET /v1/agents", s.listAgents},
		{"agents.get", "GET /v1/agents/{id}", s.getAgent},
		{"agents.update", "PATCH /v1/agents/{id}", s.updateAgent},
		{"agents.rotate", "POST /v1/agents/{id}/rotate", s.rotateAgent},
		{"agents.revoke", "POST /v1/agents/{id}/revoke", s.revokeAgent},
		{"agents.resume", "POST /v1/agents/{id}/resume", s.resumeAgent},
		{"agents.trust", "GET /v1/agents/{id}/trust", s.agentTrust},
		{"agents.delegations", "GET /v1/agents/{id}/delegations", s.listDelegations},
		{"agents.effective_permissions", "GET /v1/agents/{id}/effective-permissions", s.effectivePermissions},
		{"authorize", "POST /v1/authorize", s.authorize},
		{"delegations.create", "POST /v1/delegations", s.delegate},
		{"delegations.get", "GET /v1/delegations/{id}", s.getDelegation},
		{"delegations.revoke", "POST /v1/delegations/{id}/revoke", s.revokeDelegation},
		{"approvals.list", "GET /v1/approvals", s.listApprovals},
		{"approvals.get", "GET /v1/approvals/{id}", s.getApproval},
		{"approvals.approve", "POST /v1/approvals/{id}/approve", s.resolveApproval(true)},
		{"approvals.deny", "POST /v1/approvals/{id}/deny", s.resolveApproval(false)},
		{"keys.create", "POST /v1/keys", s.createKey},
		{"keys.list", "GET /v1/keys", s.listKeys},
		{"keys.get", "GET /v1/keys/{id}", s.getKey},
		{"keys.revoke", "POST /v1/keys/{id}/revoke", s.revokeKey},
		{"policies.get", "GET /v1/policies", s.policies},
		{"bundle.get", "GET /v1/bundle", s.bundle},
		{"audit.query", "GET /v1/audit", s.queryAudit},
		{"audit.export", "GET /v1/audit/export", s.exportAudit},
		{"anomalies.list", "GET /v1/anomalies", s.listAnomalies},
		{"events.stream", "GET /v1/events", s.events},
		{"webhooks.deliveries", "GET /v1/webhooks/deliveries", s.listDeliveries},
		{"health", "GET /health", s.health},
		{"ready", "GET /ready", s.ready},
		{"metrics", "GET /metrics", s.metrics},
	}
	return append(rs, s.oauthRouteTable()...)
}

// Routes lists the endpoints the main listener serves.
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.table))
	copy(out, s.table)
	return out
}

// register adds the routes to the mux and checks that the API policy
// decides each of them.
func (s *Server) register() error {
	s.table = s.routeTable()
	s.byPattern = map[string]string{}
	for _, rt := range s.table {
		if !s.access.Known(rt.Name) {
			return fmt.Errorf("route %s (%s) has no entry in policies/api: add it to grants or public", rt.Name, rt.Pattern)
		}
		s.mux.HandleFunc(rt.Pattern, s.guarded(rt.Name, rt.handler))
		s.byPattern[rt.Pattern] = rt.Name
	}
	return nil
}
