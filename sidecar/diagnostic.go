package sidecar

import (
	"log/slog"
	"net/http"
	"time"
)

// diagnosticRoutes are what the diagnostic listener serves: the probes and
// the metrics, with the main listener's handlers.
func (s *Server) diagnosticRoutes() []Route {
	return []Route{
		{"health", "GET /health", s.health},
		{"ready", "GET /ready", s.ready},
		{"metrics", "GET /metrics", s.metrics},
	}
}

// DiagnosticHandler serves /health, /ready and /metrics and nothing else,
// without a credential: what the kubelet's probes and a Prometheus scrape
// reach on the pod's IP (--diagnostic-addr) while the API stays on
// loopback or a Unix socket. Any other path is 404 and any other method
// 405, in the API's JSON error shape, whatever credential the request
// carries: nothing of the API is reachable here, not even its map. The
// Host check of TCP listeners applies (DNS rebinding), so a page in a
// browser cannot read the metrics either.
func (s *Server) DiagnosticHandler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.diagnosticRoutes() {
		mux.HandleFunc(rt.Pattern, rt.handler)
	}
	return s.hostGuard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h, pattern := mux.Handler(r)
		if pattern == "" {
			// As on the other listeners: the mux's status and Allow
			// header, our JSON body.
			rec := &headerRecorder{header: http.Header{}}
			h.ServeHTTP(rec, r)
			if allow := rec.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
				s.fail(sw, r, methodNotAllowed(r, allow))
			} else {
				s.fail(sw, r, noEndpoint(r))
			}
		} else {
			mux.ServeHTTP(sw, r)
		}
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
			slog.String("listener", "diagnostic"), slog.String("method", r.Method), slog.String("path", loggedPath(r)),
			slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)))
	}))
}
