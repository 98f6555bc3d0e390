package audit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/store"
)

// Refused API calls are audited within a budget, so a flood of them cannot
// fill the disk or take the writer from decisions: at most refusalBudget
// rows per refusalWindow for callers without a valid credential together,
// and as many for each identified caller (a key, an agent), so anonymous
// noise cannot hide what a known agent tried; then one row per window
// counts the rest. Rows are small: the route and reason are cut to
// maxRefusalRoute and maxRefusalReason bytes.
const (
	refusalBudget    = 60
	refusalWindow    = time.Minute
	refusalQueue     = 256
	maxRefusalRoute  = 128
	maxRefusalReason = 512
	// maxSuppressedActors bounds the per-caller counts in a summary row.
	maxSuppressedActors = 50
)

// Refusal is one refused call: 401 or 403.
type Refusal struct {
	Actor domain.Actor
	// AgentToken, for an agent refused, names the agent in the audit row:
	// of a Kavach token only the hash is kept; an MCP access token is kept
	// until the row is written, to be verified there (its claims alone
	// could be forged). Neither is ever written.
	AgentToken string
	Route      string // the route's name, or the method and path if none
	Status     int
	Code       string
	Reason     string

	tokenHash   string
	accessToken string
}

type refusals struct {
	st  Store
	log *slog.Logger
	// agentOf resolves an MCP access token to its grant's agent ID.
	agentOf func(ctx context.Context, token string) (string, error)
	q       chan refusalItem

	mu         sync.Mutex
	windowFrom time.Time
	// written and suppressed count the window's rows per caller: the
	// actor's ID, "" for callers without a valid credential.
	written    map[string]int
	suppressed map[string]int
}

type refusalItem struct {
	r Refusal
	// suppressed, if set, makes this the count of a window's refusals over
	// the budget, per caller.
	suppressed map[string]int
}

func newRefusals(st Store, log *slog.Logger, agentOf func(context.Context, string) (string, error)) *refusals {
	return &refusals{st: st, log: log, agentOf: agentOf, q: make(chan refusalItem, refusalQueue),
		written: map[string]int{}, suppressed: map[string]int{}}
}

// RecordRefusal audits a refused call in the background, within the
// budget; it never blocks the request.
func (s *Audit) RecordRefusal(r Refusal) {
	switch {
	case core.WellFormedToken(r.AgentToken):
		r.tokenHash = core.HashToken(r.AgentToken)
	case core.IsAccessToken(r.AgentToken):
		r.accessToken = r.AgentToken
	}
	r.AgentToken = ""
	r.Route, r.Reason = cut(r.Route, maxRefusalRoute), cut(r.Reason, maxRefusalReason)
	s.refusals.add(r, s.now())
}

// cut shortens s to at most n bytes, on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func (rs *refusals) add(r Refusal, now time.Time) {
	who := r.Actor.ID
	rs.mu.Lock()
	if now.Sub(rs.windowFrom) >= refusalWindow {
		rs.flushSuppressedLocked()
		rs.windowFrom = now
		clear(rs.written)
	}
	if rs.written[who] >= refusalBudget {
		rs.suppressed[who]++
		rs.mu.Unlock()
		return
	}
	rs.written[who]++
	rs.mu.Unlock()
	select {
	case rs.q <- refusalItem{r: r}:
	default:
		rs.mu.Lock()
		rs.suppressed[who]++
		rs.mu.Unlock()
	}
}

// flushSuppressedLocked queues the counts of the window's unwritten rows.
func (rs *refusals) flushSuppressedLocked() {
	if len(rs.suppressed) == 0 {
		return
	}
	select {
	case rs.q <- refusalItem{suppressed: rs.suppressed}:
		rs.suppressed = map[string]int{}
	default: // counted in the next window
	}
}

func (rs *refusals) run(ctx context.Context) {
	tick := time.NewTicker(refusalWindow)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			rs.mu.Lock()
			rs.flushSuppressedLocked()
			rs.mu.Unlock()
		case it := <-rs.q:
			rs.write(ctx, it)
		}
	}
}

func (rs *refusals) write(ctx context.Context, it refusalItem) {
	e := store.Event{Action: "api.refused", Target: it.r.Route, Result: domain.ResultDenied, Code: it.r.Code,
		Reason: it.r.Reason, Changes: map[string]any{"status": it.r.Status}}
	// Name the refused agent, and its owner, so the agent's and the owner's
	// audit queries show what it tried.
	var a domain.Agent
	var err error
	switch {
	case it.r.tokenHash != "":
		a, err = rs.st.AgentByTokenHash(ctx, it.r.tokenHash)
	case it.r.accessToken != "" && rs.agentOf != nil:
		var id string
		if id, err = rs.agentOf(ctx, it.r.accessToken); err == nil {
			a, err = rs.st.GetAgent(ctx, id)
		}
	case it.r.Actor.Type == domain.ActorAgent && it.r.Actor.ID != "":
		a, err = rs.st.GetAgent(ctx, it.r.Actor.ID)
	}
	if err == nil && a.ID != "" {
		it.r.Actor.ID = a.ID
		e.AgentID, e.OwnerID = a.ID, a.OwnerID
	}
	if it.suppressed != nil {
		total, by := 0, map[string]int{}
		for who, n := range it.suppressed {
			total += n
			if who == "" {
				who = "anonymous"
			}
			if len(by) < maxSuppressedActors {
				by[who] = n
			}
		}
		it.r.Actor = domain.Actor{Type: domain.ActorSystem}
		e = store.Event{Action: "api.refused.suppressed", Result: domain.ResultDenied, Code: "suppressed",
			Reason:  fmt.Sprintf("%d refused calls over the audit budget of %d a minute per caller were counted, not written one by one", total, refusalBudget),
			Changes: map[string]any{"count": total, "byCaller": by}}
	}
	if _, err := rs.st.RecordEvent(store.WithActor(ctx, it.r.Actor), e); err != nil && ctx.Err() == nil {
		rs.log.Warn("refused call not audited", "route", it.r.Route, "error", err)
	}
}
