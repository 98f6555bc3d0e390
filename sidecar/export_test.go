package sidecar

import "net/http"

// Traced is the handler a listener serves: the server under its tracing
// middleware (what ListenAndServe wraps it in).
func (s *Server) Traced() http.Handler { return s.traced(s) }
