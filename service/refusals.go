package service

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kavach-dev/kavach/store"
)

// Refused API calls are audited within a budget, so a flood of them cannot
// fill the disk or take the writer from decisions: at most refusalBudget
// rows per refusalWindow, then one row that counts the rest.
const (
	refusalBudget = 60
	refusalWindow = time.Minute
	refusalQueue  = 64
)

// Refusal is one refused call: 401 or 403.
type Refusal struct {
	Actor store.Actor
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
	written    int
	suppressed int
}

type refusalItem struct {
	r Refusal
	// suppressed, if positive, makes this the count of a window's
	// refusals over the budget.
	suppressed int
}

func newRefusals(st Store, log *slog.Logger, agentOf func(context.Context, string) (string, error)) *refusals {
	return &refusals{st: st, log: log, agentOf: agentOf, q: make(chan refusalItem, refusalQueue)}
}

// RecordRefusal audits a refused call in the background, within the
// budget; it never blocks the request.
func (s *Service) RecordRefusal(r Refusal) {
	switch {
	case wellFormedToken(r.AgentToken):
		r.tokenHash = hashToken(r.AgentToken)
	case isAccessToken(r.AgentToken):
		r.accessToken = r.AgentToken
	}
	r.AgentToken = ""
	s.refusals.add(r, s.now())
}

func (rs *refusals) add(r Refusal, now time.Time) {
	rs.mu.Lock()
	if now.Sub(rs.windowFrom) >= refusalWindow {
		rs.flushSuppressedLocked()
		rs.windowFrom, rs.written = now, 0
	}
	if rs.written >= refusalBudget {
		rs.suppressed++
		rs.mu.Unlock()
		return
	}
	rs.written++
	rs.mu.Unlock()
	select {
	case rs.q <- refusalItem{r: r}:
	default:
		rs.mu.Lock()
		rs.suppressed++
		rs.mu.Unlock()
	}
}

// flushSuppressedLocked queues the count of the window's unwritten rows.
func (rs *refusals) flushSuppressedLocked() {
	if rs.suppressed == 0 {
		return
	}
	select {
	case rs.q <- refusalItem{suppressed: rs.suppressed}:
		rs.suppressed = 0
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
	e := store.Event{Action: "api.refused", Target: it.r.Route, Result: store.ResultDenied, Code: it.r.Code,
		Reason: it.r.Reason, Changes: map[string]any{"status": it.r.Status}}
	// Name the refused agent, and its owner, so the agent's and the owner's
	// audit queries show what it tried.
	var a store.Agent
	var err error
	switch {
	case it.r.tokenHash != "":
		a, err = rs.st.AgentByTokenHash(ctx, it.r.tokenHash)
	case it.r.accessToken != "" && rs.agentOf != nil:
		var id string
		if id, err = rs.agentOf(ctx, it.r.accessToken); err == nil {
			a, err = rs.st.GetAgent(ctx, id)
		}
	case it.r.Actor.Type == store.ActorAgent && it.r.Actor.ID != "":
		a, err = rs.st.GetAgent(ctx, it.r.Actor.ID)
	}
	if err == nil && a.ID != "" {
		it.r.Actor.ID = a.ID
		e.AgentID, e.OwnerID = a.ID, a.OwnerID
	}
	if it.suppressed > 0 {
		it.r.Actor = store.Actor{Type: store.ActorSystem}
		e = store.Event{Action: "api.refused.suppressed", Result: store.ResultDenied, Code: "suppressed",
			Reason:  fmt.Sprintf("%d refused calls over the audit budget of %d a minute were counted, not written one by one", it.suppressed, refusalBudget),
			Changes: map[string]any{"count": it.suppressed}}
	}
	if _, err := rs.st.RecordEvent(store.WithActor(ctx, it.r.Actor), e); err != nil && ctx.Err() == nil {
		rs.log.Warn("refused call not audited", "route", it.r.Route, "error", err)
	}
}
