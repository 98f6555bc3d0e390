package sidecar

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/service"
)

// Live feed bounds.
const (
	// maxStreams bounds the open GET /v1/events streams of one sidecar.
	maxStreams = 64
	// feedPoll is how often an open stream looks for new events;
	// feedHeartbeat how often an idle one sends a comment, so proxies and
	// clients see it alive.
	feedPoll      = 250 * time.Millisecond
	feedHeartbeat = 15 * time.Second
	// feedRecheck is how often an open stream checks its credential
	// again: a key revoked or expired meanwhile ends the stream.
	feedRecheck = 5 * time.Second
	// feedWriteTimeout bounds each write: a client that stops reading is
	// dropped, not waited for.
	feedWriteTimeout = 30 * time.Second
)

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	list, err := s.svc.ListDeliveries(r.Context(), service.DeliveryQuery{State: q.Get("state"), Type: q.Get("type"),
		Endpoint: q.Get("endpoint"), Page: pageQuery(r)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// events streams events as Server-Sent Events: each as "id: <seq>",
// "event: <type>" and "data: <the event as JSON>". A client that
// reconnects with Last-Event-ID (or ?after=) gets what it missed, as far
// back as events.retention; without either it starts with the next event.
// With ?follow=false the stream ends once it has caught up (for scripts).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after := q.Get("after")
	if last := strings.TrimSpace(r.Header.Get("Last-Event-ID")); last != "" {
		after = last
	}
	follow := true
	switch q.Get("follow") {
	case "", "true":
	case "false":
		follow = false
	default:
		s.fail(w, r, apperr.New(apperr.Invalid, "invalid_parameter", "follow must be true or false"))
		return
	}
	feed, err := s.svc.OpenFeed(r.Context(), service.FeedQuery{Types: q.Get("types"), AgentID: q.Get("agentId"), After: after})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if n := s.streams.Add(1); n > maxStreams {
		s.streams.Add(-1)
		w.Header().Set("Retry-After", "5")
		s.fail(w, r, apperr.New(apperr.Unavailable, "too_many_streams", "%d event streams are open on this sidecar, the most it serves; retry later", maxStreams))
		return
	}
	defer s.streams.Add(-1)
	rc := http.NewResponseController(w)
	// Shutting down ends the stream at once, even one blocked writing to a
	// client that stopped reading.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-s.stopping:
			_ = rc.SetWriteDeadline(time.Now())
		case <-stop:
		}
	}()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The client's reconnection delay, then the stream.
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(feedPoll)
	defer tick.Stop()
	idle, checked := time.Now(), time.Now()
	for {
		if time.Since(checked) >= feedRecheck {
			checked = time.Now()
			if !s.stillAuthenticated(r) {
				return
			}
		}
		_ = rc.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
		list, err := s.svc.Next(r.Context(), &feed)
		if err != nil {
			if r.Context().Err() == nil {
				s.log.Warn("event stream: reading events failed; closing the stream (the client resumes with Last-Event-ID)", "error", err)
			}
			return
		}
		for _, ev := range list {
			b, err := json.Marshal(ev)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, b); err != nil {
				return
			}
		}
		switch {
		case len(list) > 0:
			idle = time.Now()
		case time.Since(idle) >= feedHeartbeat:
			idle = time.Now()
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
		if len(list) == service.FeedBatch {
			continue
		}
		if !follow {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.stopping:
			return
		case <-tick.C:
		}
	}
}

// stillAuthenticated checks the request's credential again, from the
// database: false once it was revoked or expired (or cannot be checked).
func (s *Server) stillAuthenticated(r *http.Request) bool {
	if AuthOff {
		return true
	}
	cred, err := bearer(r)
	if err != nil || cred == "" {
		return false
	}
	_, err = s.svc.Authenticate(r.Context(), cred, true)
	return err == nil
}
