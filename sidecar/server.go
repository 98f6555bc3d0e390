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
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kavach-dev/kavach/access"
	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/oauth"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/store"
	"github.com/kavach-dev/kavach/webui"
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
	// Access is the API policy's route table; nil builds it from the
	// embedded policies/api.
	Access *access.Policy
	// AllowedHosts are host names (besides localhost and IP addresses) a
	// request's Host may carry on TCP listeners; others are refused with
	// 421, against DNS rebinding.
	AllowedHosts []string
	// Tracer, when set, starts a span per request (trace.go); nil: no
	// tracing, at no cost.
	Tracer trace.TracerProvider
	// Pages, when set, serves the approval page and the dashboard
	// (webui) under /ui/: on the public listener when PagesOnPublic, else
	// on the main one. Its Export is the API's audit export.
	Pages         *webui.Options
	PagesOnPublic bool
}

// Server serves the sidecar API.
type Server struct {
	svc    *service.Service
	opts   Options
	log    *slog.Logger
	mux    *http.ServeMux
	access *access.Policy
	hosts  *hostPolicy
	// table is every route; byPattern names them by mux pattern.
	table     []Route
	byPattern map[string]string
	// exports holds a token per running export.
	exports chan struct{}
	m       *metrics
	// streams counts open event streams; stopping is closed when a
	// listener shuts down, which ends them.
	streams      atomic.Int64
	stopping     chan struct{}
	stoppingOnce sync.Once
	// ui serves the pages; nil without Options.Pages.
	ui *webui.UI
}

// New returns the API handler. It fails if a route has no entry in the API
// policy.
func New(svc *service.Service, opts Options) (*Server, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	s := &Server{svc: svc, opts: opts, log: opts.Logger, mux: http.NewServeMux(), exports: make(chan struct{}, maxExports),
		m: newMetrics(), access: opts.Access, stopping: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.access == nil {
		var err error
		if s.access, err = access.New(context.Background()); err != nil {
			return nil, err
		}
	}
	hosts := slices.Clone(opts.AllowedHosts)
	if opts.OAuth != nil {
		for _, u := range []string{opts.OAuth.Config().Issuer, opts.OAuth.Config().BaseURL} {
			if pu, err := url.Parse(u); err == nil {
				hosts = append(hosts, pu.Hostname())
			}
		}
	}
	if opts.Pages != nil {
		if base := opts.Pages.Links.Base(); base != "" {
			if pu, err := url.Parse(base); err == nil {
				hosts = append(hosts, pu.Hostname())
			}
		}
		po := *opts.Pages
		po.Export = s.exportAudit
		if po.Access == nil {
			po.Access = s.access
		}
		var err error
		if s.ui, err = webui.New(po); err != nil {
			return nil, fmt.Errorf("pages: %w", err)
		}
	}
	s.hosts = newHostPolicy(hosts)
	if err := s.register(); err != nil {
		return nil, err
	}
	return s, nil
}

// ServeHTTP routes the request through the guard; unknown paths and wrong
// methods get the same JSON error shape as everything else.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	if s.ui != nil && !s.opts.PagesOnPublic && webui.Owns(r.URL.Path) {
		s.servePage(sw, r, start)
		return
	}
	h, pattern := s.mux.Handler(r)
	route := s.byPattern[pattern]
	if pattern == "" {
		// Without a good credential, the API's map stays closed too:
		// authenticated has answered 401.
		if s.authenticated(sw, r) {
			// The mux would answer 404 or 405 in plain text; keep its
			// status and Allow header, write our JSON instead.
			rec := &headerRecorder{header: http.Header{}}
			h.ServeHTTP(rec, r)
			if allow := rec.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
				s.fail(sw, r, methodNotAllowed(r, allow))
			} else {
				s.fail(sw, r, noEndpoint(r))
			}
		}
	} else if r.ContentLength > s.opts.MaxBodyBytes {
		s.fail(sw, r, apperr.New(apperr.TooLarge, "body_too_large", "the request body is %d bytes; the limit is %d", r.ContentLength, s.opts.MaxBodyBytes))
	} else {
		r.Body = http.MaxBytesReader(sw, r.Body, s.opts.MaxBodyBytes)
		// Through the mux again: only it sets the path values. Every
		// route's handler is guarded (see register).
		s.mux.ServeHTTP(sw, r)
	}
	// Never log headers or bodies: they carry tokens.
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
		slog.String("method", r.Method), slog.String("path", loggedPath(r)), slog.String("route", route),
		slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)))
}

// authenticated reports whether r carries a valid credential; if not, it
// has answered 401.
func (s *Server) authenticated(w http.ResponseWriter, r *http.Request) bool {
	route := r.Method + " " + loggedPath(r)
	cred, err := bearer(r)
	if err == nil && cred == "" {
		s.refuse(w, r, route, service.Anonymous, errNoCredential)
		return false
	}
	if err == nil {
		var p service.Principal
		if p, err = s.svc.Authenticate(r.Context(), cred, false); err == nil && p.IsAgent() {
			_, err = s.svc.AgentOf(r.Context(), p)
		}
	}
	if err != nil {
		s.rejectCredential(w, r, route, service.Anonymous, err)
		return false
	}
	return true
}

// checkBody refuses non-JSON bodies on the API's own routes; the OAuth
// endpoints take forms, as their RFCs define.
func (s *Server) checkBody(r *http.Request, route string) error {
	if r.Method == http.MethodGet || strings.HasPrefix(route, "oauth.") && s.access.Public(route) {
		return nil
	}
	return jsonBody(r)
}

// hostGuard refuses a Host that is not this sidecar's (DNS rebinding): a
// page on evil.example that resolves to 127.0.0.1 must not reach the API.
func (s *Server) hostGuard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hosts.ok(r.Host) {
			s.fail(w, r, apperr.New(apperr.Misdirected, "host_not_allowed",
				"Host %q is not this sidecar's: use localhost or an IP address, or add the name to server.allowedHosts", r.Host))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// oauthRequestsPath prefixes the consent API's paths, which hold a request
// handle: a secret, which the store keeps only as a hash.
const oauthRequestsPath = "/v1/oauth/requests/"

// servePage serves one of the pages (webui), logged as the API's calls
// are, without the path of a signed link.
func (s *Server) servePage(sw *statusWriter, r *http.Request, start time.Time) {
	s.ui.ServeHTTP(sw, r)
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "page",
		slog.String("method", r.Method), slog.String("path", loggedPath(r)),
		slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)))
}

// loggedPath is the request's path as logged: request handles are cut out.
func loggedPath(r *http.Request) string {
	if webui.Owns(r.URL.Path) {
		return webui.LoggedPath(r.URL.Path)
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, oauthRequestsPath); ok {
		_, action, _ := strings.Cut(rest, "/")
		return strings.TrimSuffix(oauthRequestsPath+"{handle}/"+action, "/")
	}
	return r.URL.Path
}

// Listener is one address to serve: host:port, or unix:///path/kavach.sock
// for a Unix socket (mode 0660, owned by SocketGroup if set).
type Listener struct {
	Addr string
	// SocketGroup names or numbers the group of a Unix socket: the app's
	// supplemental group, so it can connect and agents under other users
	// cannot.
	SocketGroup string
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
	ln, err := listen(ctx, l)
	if err != nil {
		return err
	}
	h := l.Handler
	if h == nil {
		h = s
		if ln.Addr().Network() == "tcp" {
			h = s.hostGuard(h)
		}
	}
	h = s.traced(h)
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
	// Event streams never end on their own: end them, so that shutting
	// down waits only for calls in flight.
	s.stoppingOnce.Do(func() {
		close(s.stopping)
		if s.ui != nil {
			s.ui.Stop()
		}
	})
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, api.ErrorBody{Error: api.Error{Code: code, Message: msg}})
}

// statusOf is the HTTP status of an error of kind k.
func statusOf(k apperr.Kind) int { return apperr.HTTPStatus(k) }

// fail maps any error to its status and code: the one place that does.
// Only its own kinds of error reach the client; anything else is logged
// and answered as an internal error.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errBodyTooLarge) {
		err = apperr.Wrap(err, apperr.TooLarge, "body_too_large", "the request body is too large (%v)", err)
	}
	se, ok := apperr.As(err)
	switch {
	case ok && statusOf(se.Kind) != http.StatusInternalServerError:
		if se.Kind == apperr.Unauthorized && w.Header().Get("WWW-Authenticate") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kavach", error="invalid_token"`)
		}
		writeError(w, statusOf(se.Kind), se.Code, se.Message)
	case ok:
		s.log.ErrorContext(r.Context(), "request failed", "path", loggedPath(r), "code", se.Code, "error", err)
		writeError(w, http.StatusInternalServerError, se.Code, se.Message)
	case errors.Is(err, context.Canceled):
		// The client went away; nothing to answer.
	case store.IsUnavailable(err):
		// Whatever the route, a database that is locked, read-only,
		// unreachable or too slow is a 503 to retry, not a fault of ours.
		s.log.WarnContext(r.Context(), "database unavailable", "path", loggedPath(r), "error", err)
		writeError(w, http.StatusServiceUnavailable, "database_unavailable",
			"the database is unavailable ("+store.UnavailableReason(err)+"); retry shortly")
	default:
		s.log.ErrorContext(r.Context(), "request failed", "path", loggedPath(r), "error", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; see the sidecar log")
	}
}

// methodNotAllowed is a 405 for a known path (Allow is set by the caller).
func methodNotAllowed(r *http.Request, allow string) error {
	return apperr.New(apperr.MethodNotAllowed, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)
}

// noEndpoint is a 404 for a path no route serves.
func noEndpoint(r *http.Request) error {
	return apperr.New(apperr.NotFound, "not_found", "no endpoint %s %s", r.Method, r.URL.Path)
}
