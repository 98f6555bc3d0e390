package sidecar

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
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

// pageQuery reads the paging parameters every list takes: limit and
// cursor (the service checks them).
func pageQuery(r *http.Request) service.PageQuery {
	q := r.URL.Query()
	return service.PageQuery{Limit: q.Get("limit"), Cursor: q.Get("cursor")}
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	list, err := s.svc.ListAgents(r.Context(), q.Get("ownerId"), q.Get("status"), pageQuery(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
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

func (s *Server) resumeAgent(w http.ResponseWriter, r *http.Request) {
	a, err := s.svc.ResumeAgent(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) agentTrust(w http.ResponseWriter, r *http.Request) {
	t, err := s.svc.AgentTrust(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) listAnomalies(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	list, err := s.svc.ListAnomalies(r.Context(), service.AnomalyQuery{AgentID: q.Get("agentId"), Type: q.Get("type"),
		Since: q.Get("since"), Page: pageQuery(r)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	var req api.AuthorizeRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	// The agent whose decision this is: the caller itself (its own token),
	// or the one whose token the app forwards beside its key.
	p := principalOf(r.Context())
	forwarded := strings.TrimSpace(r.Header.Get(api.AgentTokenHeader))
	bearer := forwarded
	if p.IsAgent() {
		switch {
		case req.AgentID != "":
			s.refuse(w, r, "authorize", p, apperr.New(apperr.Forbidden, "forbidden",
				"an agent's credential may only ask for its own decisions: leave agentId out"))
			return
		case forwarded != "":
			s.fail(w, r, apperr.New(apperr.Invalid, "ambiguous_identity",
				"%s goes beside an API key; an agent's own credential needs none", api.AgentTokenHeader))
			return
		}
		bearer = p.AgentToken
	}
	explain := false
	switch v := r.URL.Query().Get("explain"); v {
	case "", "false":
	case "true":
		explain = true
	default:
		s.fail(w, r, apperr.New(apperr.Invalid, "invalid_parameter", "explain must be true or false"))
		return
	}
	start := time.Now()
	res, err := s.svc.Authorize(r.Context(), req, bearer, explain)
	if err != nil {
		// A key revoked on another replica, or an agent's own token that is
		// no good, is refused like any bad credential.
		s.rejectCredential(w, r, "authorize", p, err)
		return
	}
	s.m.authorize.observe(time.Since(start))
	if res.Allowed {
		s.m.allowed.Add(1)
	} else {
		s.m.denied.Add(1)
	}
	writeJSON(w, http.StatusOK, res)
}

func auditQuery(r *http.Request) service.AuditQuery {
	q := r.URL.Query()
	return service.AuditQuery{AgentID: q.Get("agentId"), UserID: q.Get("userId"), Result: q.Get("result"),
		Since: q.Get("since"), Until: q.Get("until"), Limit: q.Get("limit"), Cursor: q.Get("cursor"),
		Kind: q.Get("kind"), Action: q.Get("action")}
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
	"result", "code", "reason", "ip", "userAgent", "durationUs", "approvalId",
	"kind", "actorType", "actorId", "actorName", "onBehalfOf", "changes", "chainId", "chainSeq", "prevHash", "hash"}

const (
	// maxExports caps concurrent exports; each may run for long.
	maxExports = 4
	// exportWriteTimeout bounds each write to a slow export client.
	exportWriteTimeout = 30 * time.Second
	exportFlushEvery   = 500
)

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
		s.fail(w, r, apperr.New(apperr.Invalid, "invalid_parameter", "format must be csv or json"))
		return
	}
	if err := s.svc.ValidateExport(q); err != nil {
		s.fail(w, r, err)
		return
	}
	select {
	case s.exports <- struct{}{}:
		defer func() { <-s.exports }()
	default:
		s.fail(w, r, apperr.New(apperr.TooMany, "too_many_exports", "%d exports are running; retry later", maxExports))
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
	var enc exportEncoder
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="kavach-audit.csv"`)
		enc = newCSVEncoder(w)
	} else {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", `attachment; filename="kavach-audit.json"`)
		je := json.NewEncoder(w)
		// Arguments and changes go out as stored, so that the export's
		// rows hash as they did when written (kavach audit verify --file).
		je.SetEscapeHTML(false)
		enc = &jsonEncoder{w: w, enc: je}
	}
	n := 0
	err := enc.begin()
	if err == nil {
		err = s.svc.ExportAudit(r.Context(), q, func(e api.AuditEntry) error {
			if err := enc.row(e); err != nil {
				return err
			}
			if n++; n%exportFlushEvery == 0 {
				if err := enc.flush(); err != nil {
					return err
				}
				if err := rc.Flush(); err != nil {
					return err
				}
				_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
			}
			return nil
		})
	}
	if err == nil {
		err = enc.end()
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "audit export aborted", "rows", n, "error", err)
		panic(http.ErrAbortHandler)
	}
}

type exportEncoder interface {
	begin() error
	row(api.AuditEntry) error
	flush() error
	end() error
}

type csvEncoder struct{ cw *csv.Writer }

func newCSVEncoder(w io.Writer) *csvEncoder {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // RFC 4180
	return &csvEncoder{cw: cw}
}

func (c *csvEncoder) begin() error { return c.cw.Write(CSVHeader) }

func (c *csvEncoder) row(e api.AuditEntry) error {
	return c.cw.Write([]string{e.ID, api.FormatTime(e.Timestamp.Time), cell(e.AgentID), cell(e.OwnerID),
		cell(e.Action), cell(e.Resource), cell(string(e.Arguments)), e.Result, e.Code, cell(e.Reason), e.IP,
		cell(e.UserAgent), strconv.FormatInt(e.DurationUS, 10), e.ApprovalID,
		e.Kind, e.Actor.Type, cell(e.Actor.ID), cell(e.Actor.Name), cell(e.Actor.OnBehalfOf), cell(string(e.Changes)),
		e.ChainID, strconv.FormatInt(e.ChainSeq, 10), e.PrevHash, e.Hash})
}

func (c *csvEncoder) flush() error { c.cw.Flush(); return c.cw.Error() }

func (c *csvEncoder) end() error { return c.flush() }

// cell defuses values a spreadsheet would run as a formula (agents choose
// their actions and resources): a leading =, +, -, @, tab or CR gets a '.
func cell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

type jsonEncoder struct {
	w   io.Writer
	enc *json.Encoder
	n   int
}

func (j *jsonEncoder) begin() error {
	_, err := io.WriteString(j.w, "[")
	return err
}

func (j *jsonEncoder) row(e api.AuditEntry) error {
	if j.n > 0 {
		if _, err := io.WriteString(j.w, ","); err != nil {
			return err
		}
	}
	j.n++
	return j.enc.Encode(e)
}

func (j *jsonEncoder) flush() error { return nil }

func (j *jsonEncoder) end() error {
	_, err := io.WriteString(j.w, "]\n")
	return err
}

// health is liveness: 200 while the process serves HTTP, from memory. It
// never asks the database (whose state it reports as last seen), so an
// orchestrator does not restart a sidecar for a database outage; /ready
// says whether to send it decisions.
func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	h := s.svc.Health()
	h.Version = s.opts.Version
	writeJSON(w, http.StatusOK, h)
}

// ready is readiness: 200 once agent data is loaded and while writes to
// the database succeed; 503 with the reason otherwise.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.Readiness(); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

// policies is GET /v1/policies: the decision policies, and the policy of
// the API itself (policies/api).
func (s *Server) policies(w http.ResponseWriter, _ *http.Request) {
	st := s.svc.Policies()
	out := api.PolicyList{Revision: st.Revision, LoadedAt: api.NewTime(st.LoadedAt), Modules: make([]api.PolicyModule, len(st.Modules)),
		ExtensionsPath: st.ExtensionsPath, LastReloadAt: api.NewTimePtr(st.LastReloadAt), LastReloadError: st.LastReloadError,
		API: api.AccessPolicy{Modules: []api.AccessPolicyModule{}, Roles: s.access.Roles()}}
	for i, m := range st.Modules {
		out.Modules[i] = api.PolicyModule{File: m.File, Package: m.Package, Source: m.Source, SHA256: m.SHA256}
	}
	for _, m := range s.access.Modules() {
		out.API.Modules = append(out.API.Modules, api.AccessPolicyModule{File: m.File, SHA256: m.SHA256})
	}
	writeJSON(w, http.StatusOK, out)
}

// bundle streams an OPA bundle of the policies in use and a snapshot of the
// data (unsigned: signing keys stay with the operator's CLI).
func (s *Server) bundle(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	info, err := s.svc.Bundle(r.Context(), &buf)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="kavach-bundle.tar.gz"`)
	w.Header().Set("X-Kavach-Bundle-Revision", info.Revision)
	_, _ = w.Write(buf.Bytes())
}
