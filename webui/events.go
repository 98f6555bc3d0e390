package webui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/service"
)

const (
	// maxUIStreams bounds the live feeds the pages hold open, and
	// maxStreamsPerKey those of one key's sessions, so that one auditor's
	// tabs cannot take them all.
	maxUIStreams     = 16
	maxStreamsPerKey = 4
	// recentEvents is how many events the feed page shows on load.
	recentEvents = 50
	uiFeedPoll   = 500 * time.Millisecond
	uiRecheck    = 5 * time.Second
	uiWriteLimit = 30 * time.Second
)

// auditExport streams the audit log with the page's filters, through the
// API's own export (Options.Export).
func (u *UI) auditExport(w http.ResponseWriter, r *http.Request, c current) {
	if !u.can(c.principal, "audit.export") {
		u.refuse(w, r, c, "audit.export")
		return
	}
	if u.export == nil {
		u.errorPage(w, r, http.StatusNotFound, "Not found", "Export is not available here.")
		return
	}
	u.export(w, r)
}

type eventsData struct {
	Events []api.Event
	// After is the seq the live feed resumes from.
	After int64
}

// eventsPage shows the latest events; its script then follows the feed.
func (u *UI) eventsPage(w http.ResponseWriter, r *http.Request, c current) {
	if !u.can(c.principal, "events.stream") {
		u.refuse(w, r, c, "events.stream")
		return
	}
	ctx := r.Context()
	latest, err := u.svc.OpenFeed(ctx, service.FeedQuery{})
	if err != nil {
		u.failure(w, r, err)
		return
	}
	from := max(latest.After-recentEvents, 0)
	feed, err := u.svc.OpenFeed(ctx, service.FeedQuery{After: strconv.FormatInt(from, 10)})
	if err != nil {
		u.failure(w, r, err)
		return
	}
	list, err := u.svc.Next(ctx, &feed)
	if err != nil {
		u.failure(w, r, err)
		return
	}
	// Newest first, as the live rows arrive on top.
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	v := u.base(c, "Live events", "events")
	v.Data = eventsData{Events: list, After: feed.After}
	u.render(w, http.StatusOK, "events", v)
}

// eventsStream is the feed as Server-Sent Events for the page's script,
// authenticated by the session (re-checked every few seconds).
func (u *UI) eventsStream(w http.ResponseWriter, r *http.Request, c current) {
	if !u.can(c.principal, "events.stream") {
		u.refuse(w, r, c, "events.stream")
		return
	}
	after := r.URL.Query().Get("after")
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		after = last
	}
	ctx := r.Context()
	feed, err := u.svc.OpenFeed(ctx, service.FeedQuery{After: after})
	if err != nil {
		u.failure(w, r, err)
		return
	}
	if !u.takeStream(c.principal.Actor.ID) {
		w.Header().Set("Retry-After", "5")
		u.errorPage(w, r, http.StatusServiceUnavailable, "Busy", "Too many live feeds are open; retry later.")
		return
	}
	defer u.dropStream(c.principal.Actor.ID)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(uiFeedPoll)
	defer tick.Stop()
	checked := u.now()
	for {
		if u.now().Sub(checked) >= uiRecheck {
			checked = u.now()
			if _, ok := u.sessions.get(c.id); !ok || u.stillGood(ctx, c.principal) != nil {
				return
			}
		}
		_ = rc.SetWriteDeadline(time.Now().Add(uiWriteLimit))
		list, err := u.svc.Next(ctx, &feed)
		if err != nil {
			return
		}
		for _, ev := range list {
			b, err := json.Marshal(ev)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: kavach\ndata: %s\n\n", ev.Seq, b); err != nil {
				return
			}
		}
		if len(list) > 0 && rc.Flush() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-u.stopping:
			return
		case <-tick.C:
		}
	}
}

// takeStream books a live feed for key, within both bounds.
func (u *UI) takeStream(key string) bool {
	u.streamMu.Lock()
	defer u.streamMu.Unlock()
	if u.streamTotal >= maxUIStreams || u.streamsOf[key] >= maxStreamsPerKey {
		return false
	}
	u.streamTotal++
	u.streamsOf[key]++
	return true
}

func (u *UI) dropStream(key string) {
	u.streamMu.Lock()
	defer u.streamMu.Unlock()
	u.streamTotal--
	if u.streamsOf[key]--; u.streamsOf[key] <= 0 {
		delete(u.streamsOf, key)
	}
}
