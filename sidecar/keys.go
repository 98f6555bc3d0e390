package sidecar

import (
	"net/http"

	"github.com/kavach-dev/kavach/api"
)

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req api.CreateKeyRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	k, err := s.svc.CreateKey(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/keys/"+k.ID)
	writeJSON(w, http.StatusCreated, k)
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	list, err := s.svc.ListKeys(r.Context(), pageQuery(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request) {
	k, err := s.svc.GetKey(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	k, err := s.svc.RevokeKey(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}
