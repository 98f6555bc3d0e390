// Package sidecar is the HTTP transport of Kavach: it decodes requests,
// calls the service and maps its errors to statuses and stable codes. No
// decision or storage logic lives here.
package sidecar

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/oauth"
	"github.com/kavach-dev/kavach/service"
)

// DefaultMaxBodyBytes caps request bodies unless configured otherwise.
const DefaultMaxBodyBytes = 1 << 20

// Options configures the HTTP server.
type Options struct {
	MaxBodyBytes int64
	Version      string
	Logger       *slog.Logger
	// OAuth is the MCP authorization server; nil when mcp is off.
	OAuth *oauth.Server
}

// Server serves the sidecar API.
type Server struct {
	svc  *service.Service
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
	// exports holds a token per running export.
	exports chan struct{}
	m       *metrics
}

// New returns the API handler.
func New(svc *service.Service, opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	s := &Server{svc: svc, opts: opts, log: opts.Logger, mux: http.NewServeMux(), exports: make(chan struct{}, maxExports), m: newMetrics()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	s.mux.HandleFunc("POST /v1/agents", s.createAgent)
	s.mux.HandleFunc("GET /v1/agents", s.listAgents)
	s.mux.HandleFunc("GET /v1/agents/{id}", s.getAgent)
	s.mux.HandleFunc("PATCH /v1/agents/{id}", s.updateAgent)
	s.mux.HandleFunc("POST /v1/agents/{id}/rotate", s.rotateAgent)
	s.mux.HandleFunc("POST /v1/agents/{id}/revoke", s.revokeAgent)
	s.mux.HandleFunc("POST /v1/authorize", s.authorize)
	s.mux.HandleFunc("GET /v1/agents/{id}/delegations", s.listDelegations)
	s.mux.HandleFunc("GET /v1/agents/{id}/effective-permissions", s.effectivePermissions)
	s.mux.HandleFunc("POST /v1/delegations", s.delegate)
	s.mux.HandleFunc("GET /v1/delegations/{id}", s.getDelegation)
	s.mux.HandleFunc("POST /v1/delegations/{id}/revoke", s.revokeDelegation)
	s.mux.HandleFunc("GET /v1/approvals", s.listApprovals)
	s.mux.HandleFunc("GET /v1/approvals/{id}", s.getApproval)
	s.mux.HandleFunc("POST /v1/approvals/{id}/approve", s.resolveApproval(true))
	s.mux.HandleFunc("POST /v1/approvals/{id}/deny", s.resolveApproval(false))
	s.mux.HandleFunc("GET /v1/policies", s.policies)
	s.mux.HandleFunc("GET /v1/bundle", s.bundle)
	s.mux.HandleFunc("GET /v1/audit", s.queryAudit)
	s.mux.HandleFunc("GET /v1/audit/export", s.exportAudit)
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.HandleFunc("GET /ready", s.ready)
	s.mux.HandleFunc("GET /metrics", s.metrics)
	s.oauthRoutes()
}

// ServeHTTP routes the request; unknown paths and wrong methods get the
// same JSON error shape as everything else.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		// The mux would answer 404 or 405 in plain text; keep its status
		// and Allow header, write our JSON instead.
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(sw, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
		} else {
			writeError(sw, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
		}
	} else {
		if r.ContentLength > s.opts.MaxBodyBytes {
			writeError(sw, http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("the request body is %d bytes; the limit is %d", r.ContentLength, s.opts.MaxBodyBytes))
		} else {
			r.Body = http.MaxBytesReader(sw, r.Body, s.opts.MaxBodyBytes)
			// Through the mux again: only it sets the path values.
			s.mux.ServeHTTP(sw, r)
		}
	}
	// Never log headers or bodies: they carry tokens.
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
		slog.String("method", r.Method), slog.String("path", loggedPath(r)), slog.String("route", pattern),
		slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)))
}

// oauthRequestsPath prefixes the consent API's paths, which hold a request
// handle: a secret, which the store keeps only as a hash.
const oauthRequestsPath = "/v1/oauth/requests/"

// loggedPath is the request's path as logged: request handles are cut out.
func loggedPath(r *http.Request) string {
	if rest, ok := strings.CutPrefix(r.URL.Path, oauthRequestsPath); ok {
		_, action, _ := strings.Cut(rest, "/")
		return strings.TrimSuffix(oauthRequestsPath+"{handle}/"+action, "/")
	}
	return r.URL.Path
}

// Listener is one address to serve.
type Listener struct {
	Addr string
	// Certificate, if set, makes it serve HTTPS only. Load it before
	// listening (tls.LoadX509KeyPair), so a bad file stops the sidecar at
	// start.
	Certificate *tls.Certificate
	// Handler defaults to the whole API.
	Handler http.Handler
}

// ListenAndServe serves l until ctx is done, then shuts down gracefully.
// ready is called with the bound address once listening.
func (s *Server) ListenAndServe(ctx context.Context, l Listener, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", l.Addr, err)
	}
	h := l.Handler
	if h == nil {
		h = s
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if l.Certificate != nil {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*l.Certificate}}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type headerRecorder struct{ header http.Header }

func (r *headerRecorder) Header() http.Header         { return r.header }
func (r *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *headerRecorder) WriteHeader(int)             {}

// decode reads one JSON object into v, strictly: unknown fields, trailing
// data and oversized bodies are errors.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeError(err)
		}
		return &service.Error{Kind: service.KindInvalid, Code: "invalid_json", Message: "the body must hold exactly one JSON object"}
	}
	return nil
}

var errBodyTooLarge = errors.New("body too large")

func decodeError(err error) error {
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var timeErr *time.ParseError
	switch {
	case errors.As(err, &timeErr):
		return &service.Error{Kind: service.KindInvalid, Code: "invalid_field",
			Message: fmt.Sprintf("%q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", timeErr.Value)}
	case errors.As(err, &maxErr):
		return fmt.Errorf("%w: limit is %d bytes", errBodyTooLarge, maxErr.Limit)
	case errors.Is(err, io.EOF):
		return &service.Error{Kind: service.KindInvalid, Code: "invalid_json", Message: "the request body is empty; a JSON object is required"}
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return &service.Error{Kind: service.KindInvalid, Code: "invalid_json", Message: "the body is not valid JSON: " + err.Error()}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &service.Error{Kind: service.KindInvalid, Code: "invalid_json", Message: "the body must be a JSON object"}
		}
		return &service.Error{Kind: service.KindInvalid, Code: "invalid_field",
			Message: fmt.Sprintf("field %s must be of JSON type %s, not %s", field, jsonType(typeErr.Type.String()), typeErr.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for this one.
		return &service.Error{Kind: service.KindInvalid, Code: "unknown_field",
			Message: "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")}
	}
	return &service.Error{Kind: service.KindInvalid, Code: "invalid_json", Message: err.Error()}
}

func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		if goType == "time.Time" {
			return "string (RFC 3339 time)"
		}
		return "object"
	case goType == "string":
		return "string"
	case goType == "bool":
		return "boolean"
	}
	return "number"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, api.ErrorBody{Error: api.Error{Code: code, Message: msg}})
}

// fail maps any error to its status and code: the one place that does.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se *service.Error
	switch {
	case errors.Is(err, errBodyTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the request body is too large ("+err.Error()+")")
	case errors.As(err, &se):
		status := map[service.Kind]int{
			service.KindInvalid:       http.StatusBadRequest,
			service.KindUnauthorized:  http.StatusUnauthorized,
			service.KindNotFound:      http.StatusNotFound,
			service.KindConflict:      http.StatusConflict,
			service.KindUnprocessable: http.StatusUnprocessableEntity,
			service.KindUnavailable:   http.StatusServiceUnavailable,
		}[se.Kind]
		if status == 0 {
			status = http.StatusInternalServerError
			s.log.ErrorContext(r.Context(), "request failed", "path", loggedPath(r), "code", se.Code, "error", err)
		}
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		}
		writeError(w, status, se.Code, se.Message)
	case errors.Is(err, context.Canceled):
		// The client went away; nothing to answer.
	default:
		s.log.ErrorContext(r.Context(), "request failed", "path", loggedPath(r), "error", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; see the sidecar log")
	}
}
