package sidecar

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/service"
)

func (s *Server) createAgent(w http.ResponseWriter, r *http.Request) {
	var req api.CreateAgentRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	a, err := s.svc.CreateAgent(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/agents/"+a.ID)
	writeJSON(w, http.StatusCreated, a)
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	agents, err := s.svc.ListAgents(r.Context(), q.Get("ownerId"), q.Get("status"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.AgentList{Agents: agents})
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) {
	a, err := s.svc.GetAgent(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) updateAgent(w http.ResponseWriter, r *http.Request) {
	var req api.UpdateAgentRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	a, err := s.svc.UpdateAgent(r.Context(), r.PathValue("id"), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) rotateAgent(w http.ResponseWriter, r *http.Request) {
	a, err := s.svc.RotateAgent(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) revokeAgent(w http.ResponseWriter, r *http.Request) {
	a, err := s.svc.RevokeAgent(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	var req api.AuthorizeRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	bearer := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			s.fail(w, r, &service.Error{Kind: service.KindUnauthorized, Code: "malformed_token",
				Message: "the Authorization header must be \"Bearer kv_…\""})
			return
		}
		bearer = strings.TrimSpace(token)
	}
	res, err := s.svc.Authorize(r.Context(), req, bearer)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func auditQuery(r *http.Request) service.AuditQuery {
	q := r.URL.Query()
	return service.AuditQuery{AgentID: q.Get("agentId"), UserID: q.Get("userId"), Result: q.Get("result"),
		Since: q.Get("since"), Until: q.Get("until"), Limit: q.Get("limit"), Cursor: q.Get("cursor")}
}

func (s *Server) queryAudit(w http.ResponseWriter, r *http.Request) {
	page, err := s.svc.QueryAudit(r.Context(), auditQuery(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// CSVHeader is the header row of the CSV export.
var CSVHeader = []string{"id", "timestamp", "agentId", "ownerId", "action", "resource", "arguments",
	"result", "code", "reason", "ip", "userAgent", "durationUs"}

// exportAudit streams rows as they are read; memory does not grow with the
// export. A failure after the first byte aborts the connection, so a client
// never mistakes a truncated export for a complete one.
func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request) {
	q := auditQuery(r)
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "json" {
		writeError(w, http.StatusBadRequest, "invalid_parameter", "format must be csv or json")
		return
	}
	if err := s.svc.ValidateExport(q); err != nil {
		s.fail(w, r, err)
		return
	}
	flusher, _ := w.(http.Flusher)
	const flushEvery = 500
	n := 0
	var write func(api.AuditEntry) error
	var finish func() error
	switch format {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="kavach-audit.csv"`)
		cw := csv.NewWriter(w)
		if err := cw.Write(CSVHeader); err != nil {
			return
		}
		write = func(e api.AuditEntry) error {
			return cw.Write([]string{e.ID, e.Timestamp.Format(time.RFC3339Nano), e.AgentID, e.OwnerID, e.Action,
				e.Resource, string(e.Arguments), e.Result, e.Code, e.Reason, e.IP, e.UserAgent,
				strconv.FormatInt(e.DurationUS, 10)})
		}
		finish = func() error { cw.Flush(); return cw.Error() }
		flushRows := write
		write = func(e api.AuditEntry) error {
			if err := flushRows(e); err != nil {
				return err
			}
			if n++; n%flushEvery == 0 {
				cw.Flush()
				if flusher != nil {
					flusher.Flush()
				}
			}
			return cw.Error()
		}
	case "json":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", `attachment; filename="kavach-audit.json"`)
		if _, err := w.Write([]byte("[")); err != nil {
			return
		}
		enc := json.NewEncoder(w)
		write = func(e api.AuditEntry) error {
			if n > 0 {
				if _, err := w.Write([]byte(",")); err != nil {
					return err
				}
			}
			if n++; n%flushEvery == 0 && flusher != nil {
				flusher.Flush()
			}
			return enc.Encode(e)
		}
		finish = func() error { _, err := w.Write([]byte("]\n")); return err }
	}
	err := s.svc.ExportAudit(r.Context(), q, write)
	if err == nil {
		err = finish()
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "audit export aborted", "rows", n, "error", err)
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	h := api.Health{Status: "ok", Database: "ok", Version: s.opts.Version}
	v, err := s.svc.Health(r.Context())
	h.SchemaVersion = v
	status := http.StatusOK
	if err != nil {
		s.log.WarnContext(r.Context(), "health check failed", "error", err)
		h.Status, h.Database, status = "unavailable", "unreachable", http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	if !s.svc.Ready() {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "agent data is not loaded into OPA yet")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}
