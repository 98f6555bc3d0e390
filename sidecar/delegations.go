package sidecar

import (
	"net/http"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

func (s *Server) delegate(w http.ResponseWriter, r *http.Request) {
	var req api.DelegateRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.svc.Delegate(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/delegations/"+d.ID)
	writeJSON(w, http.StatusCreated, d)
}

func (s *Server) getDelegation(w http.ResponseWriter, r *http.Request) {
	d, err := s.svc.GetDelegation(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) revokeDelegation(w http.ResponseWriter, r *http.Request) {
	d, err := s.svc.RevokeDelegation(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) listDelegations(w http.ResponseWriter, r *http.Request) {
	list, err := s.svc.ListDelegations(r.Context(), r.PathValue("id"), pageQuery(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) effectivePermissions(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	perms, err := s.svc.EffectivePermissions(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.EffectivePermissions{AgentID: id, Permissions: perms})
}

func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	list, err := s.svc.ListApprovals(r.Context(), q.Get("status"), q.Get("ownerId"), q.Get("agentId"), pageQuery(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// getApproval returns an approval, with its signed link (url) for a
// caller who may decide it anyway: the link decides, so a read-only
// credential never sees it.
func (s *Server) getApproval(w http.ResponseWriter, r *http.Request) {
	a, err := s.svc.GetApproval(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.opts.Pages != nil && a.Status == domain.ApprovalPending {
		p := principalOf(r.Context())
		if s.access.Decide("approvals.approve", principalType(p), p.Roles).Allow {
			a.URL = s.opts.Pages.Links.URL(a.ID, a.OwnerID, a.ExpiresAt.Time)
		}
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) resolveApproval(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req api.ResolveApprovalRequest
		if err := decode(r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
		a, err := s.svc.ResolveApproval(r.Context(), r.PathValue("id"), approve, req)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, a)
	}
}
