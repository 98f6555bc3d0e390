// Package events delivers recorded events to webhook endpoints, signed as
// the Standard Webhooks specification says, and reads them back for the
// live feed (GET /v1/events). The store writes each event in the
// transaction of the change it reports; this package follows each
// endpoint's cursor over the events to make the first attempts (cursor.go),
// and leases the retries of those that failed when due, attempts them and
// records the outcome, so a restart or a crash loses nothing and replicas
// sharing a database deliver each event under its one id.
package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"
	mathrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/store"
)

// Store is what delivery and the feed read and write.
type Store interface {
	GetCursor(ctx context.Context, endpoint string) (store.Cursor, error)
	StartCursor(ctx context.Context, endpoint string) error
	LeaseCursor(ctx context.Context, owner, endpoint string, seq int64, lease time.Duration) (bool, error)
	AdvanceCursor(ctx context.Context, owner, endpoint string, from, to int64, lease time.Duration, retries []store.Retry) (bool, error)
	ReleaseCursor(ctx context.Context, owner, endpoint string) error
	DropStaleCursors(ctx context.Context, known []string, before time.Time) (int64, error)
	ClaimDeliveries(ctx context.Context, owner, endpoint string, lease time.Duration, limit int) ([]domain.WebhookDelivery, error)
	FailOrphanDeliveries(ctx context.Context, known []string, before time.Time) (int64, error)
	RecordAttempts(ctx context.Context, owner string, attempts []store.Attempt) (int, error)
	ListDeliveries(ctx context.Context, f store.DeliveryFilter, p store.Page) ([]domain.WebhookDelivery, string, error)
	PendingDeliveries(ctx context.Context) (int64, time.Time, error)
	Deliveries() <-chan struct{}
	PruneEvents(ctx context.Context, before time.Time) (int64, error)
	EventsSince(ctx context.Context, after, upTo int64, f store.EventFilter, limit int) ([]domain.Event, error)
	LatestEvent(ctx context.Context) (int64, error)
}

// Endpoint is one webhook endpoint.
type Endpoint struct {
	// ID names it in deliveries and metrics (config.EndpointID).
	ID  string
	URL string
	// Events are the event types it receives.
	Events []string
	// Keys sign deliveries (the whsec_ secrets' bytes: the current one,
	// then the previous one while rotating: one signature each); none:
	// unsigned (approval.webhookUrl, which never had a secret).
	Keys [][]byte
	// Legacy adds the approval request as "approval" to the body, as
	// approval.webhookUrl's receivers read it.
	Legacy bool
}

// Options configure delivery.
type Options struct {
	Endpoints []Endpoint
	// Retention is how long events and settled deliveries are kept.
	Retention time.Duration
	// Client sends the deliveries; nil: Kavach's own sender (kept-alive
	// HTTP/1.1, each attempt cut at 10 s, no redirect followed), or
	// net/http's client through a proxy.
	Client *http.Client
	// TLSConfig, if set, is the sender's (its trusted roots, say).
	TLSConfig *tls.Config
	// FirstRetry is the wait after the first failed attempt (default
	// 2 s); each later wait doubles, up to MaxBackoff (1 h).
	FirstRetry time.Duration
	// GiveUpAfter is how long after the event delivery is retried
	// (default 24 h); then it is failed.
	GiveUpAfter time.Duration
	// ApprovalURL signs an approval's link for its owner (webui.Links),
	// added as url to approval.requested webhooks; nil or "" adds none.
	ApprovalURL func(id, owner string, expires time.Time) string
}

// Delivery bounds.
const (
	// DefaultFirstRetry is the wait after a first failed attempt.
	DefaultFirstRetry = 2 * time.Second
	// MaxBackoff caps the wait between attempts.
	MaxBackoff = time.Hour
	// DefaultGiveUpAfter is how long an event is retried.
	DefaultGiveUpAfter = 24 * time.Hour
	// attemptTimeout bounds one attempt; lease outlives a batch of them.
	attemptTimeout = 10 * time.Second
	claimBatch     = 32
	perEndpoint    = 8
	// lease outlives a claimed batch at its slowest: 32 attempts, 8 at
	// once, each cut at 10 s.
	lease         = claimBatch / perEndpoint * attemptTimeout * 3 / 2
	pollInterval  = time.Second
	gather        = 100 * time.Millisecond
	countInterval = 10 * time.Second
)

// Events delivers webhooks and serves the feed; safe for concurrent use.
type Events struct {
	store     Store
	endpoints map[string]Endpoint
	// endpointIDs are the endpoints' IDs, in configuration order.
	endpointIDs []string
	opts        Options
	// owner names this process's leases, so that an attempt's outcome is
	// recorded only while this replica still holds the row.
	owner string
	http  *http.Client
	// send posts deliveries unless Options.Client was given.
	send *sender
	// signers sign each endpoint's deliveries, a signer per key.
	signers map[string][]*signer
	now     func() time.Time
	log     *slog.Logger

	mu      sync.Mutex
	counts  map[string]*counters // by endpoint ID
	pending int64                // pending deliveries, counted every 10 s
	oldest  time.Time            // creation of the oldest pending delivery
}

type counters struct{ delivered, retried, failed atomic.Uint64 }

// New returns the delivery worker and feed over st.
func New(st Store, opts Options, now func() time.Time, log *slog.Logger) *Events {
	if opts.FirstRetry <= 0 {
		opts.FirstRetry = DefaultFirstRetry
	}
	if opts.GiveUpAfter <= 0 {
		opts.GiveUpAfter = DefaultGiveUpAfter
	}
	c := opts.Client
	if c == nil {
		c = &http.Client{
			Timeout: attemptTimeout,
			// A redirect is an answer, not a delivery: the receiver must
			// be configured at its real URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: perEndpoint,
				IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second},
		}
	}
	var send *sender
	if opts.Client == nil {
		send = newSender(opts.TLSConfig, c)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	e := &Events{store: st, endpoints: map[string]Endpoint{}, opts: opts, owner: "rep_" + hex.EncodeToString(b), http: c,
		send: send, now: now, log: log, counts: map[string]*counters{}, signers: map[string][]*signer{}}
	for _, ep := range opts.Endpoints {
		for _, k := range ep.Keys {
			e.signers[ep.ID] = append(e.signers[ep.ID], newSigner(k))
		}
		e.endpoints[ep.ID] = ep
		e.endpointIDs = append(e.endpointIDs, ep.ID)
		e.counts[ep.ID] = &counters{}
	}
	return e
}

// Run delivers webhooks until ctx ends: at once when this replica commits
// an event an endpoint subscribes to, and every second for those of other
// replicas and retries. Each endpoint has a worker of its own that follows
// its cursor, then leases up to 32 due retries at a time, attempting 8 at
// once, so a receiver that hangs slows only its own deliveries; retries'
// outcomes are recorded in batches.
// Run also counts the queue for /metrics and prunes old events.
func (e *Events) Run(ctx context.Context) {
	if e.send != nil {
		defer e.send.close()
	}
	results := make(chan store.Attempt, 4*claimBatch)
	recorded := make(chan struct{})
	go func() { defer close(recorded); e.record(ctx, results) }()
	var workers sync.WaitGroup
	wake := make([]chan struct{}, len(e.endpointIDs))
	for i, id := range e.endpointIDs {
		wake[i] = make(chan struct{}, 1)
		wake[i] <- struct{}{} // what is due already
		workers.Go(func() { e.deliver(ctx, id, wake[i], results) })
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var counted, pruned time.Time
	for {
		if now := e.now(); now.Sub(counted) >= countInterval {
			counted = now
			e.count(ctx)
		}
		if now := e.now(); now.Sub(pruned) >= time.Hour {
			pruned = now
			e.prune(ctx, now)
		}
		select {
		case <-ctx.Done():
			workers.Wait()
			close(results)
			<-recorded
			e.release(ctx)
			return
		case <-tick.C:
		case <-e.store.Deliveries():
			// Under load every audit batch commits deliveries: gather them
			// for a moment, so that claiming them costs a few transactions
			// a second, not one per batch.
			select {
			case <-ctx.Done():
				continue
			case <-time.After(gather):
			}
		}
		for _, w := range wake {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
}

// deliver is endpoint's worker: it makes the first attempts at the events
// after the endpoint's cursor, then the due retries, then waits to be
// woken.
func (e *Events) deliver(ctx context.Context, endpoint string, wake <-chan struct{}, results chan<- store.Attempt) {
	f := &follower{e: e, ep: e.endpoints[endpoint]}
	for {
		select {
		case <-ctx.Done():
			f.stop(ctx)
			return
		case <-wake:
		}
		f.follow(ctx)
		e.retry(ctx, endpoint, results)
	}
}

// retry leases endpoint's due retries and attempts them until none is due.
func (e *Events) retry(ctx context.Context, endpoint string, results chan<- store.Attempt) {
	for ctx.Err() == nil {
		batch, err := e.store.ClaimDeliveries(ctx, e.owner, endpoint, lease, claimBatch)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("claiming webhook deliveries failed; retrying in a second", "endpoint", endpoint, "error", err)
			}
			return
		}
		sem := make(chan struct{}, perEndpoint)
		var wg sync.WaitGroup
		for _, d := range batch {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				results <- e.attempt(ctx, d)
			})
		}
		wg.Wait()
		if len(batch) < claimBatch {
			return
		}
	}
}

// release gives back this replica's leases on the cursors, so that another
// replica (or the next process) follows them at once.
func (e *Events) release(ctx context.Context) {
	rel, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, id := range e.endpointIDs {
		if err := e.store.ReleaseCursor(rel, e.owner, id); err != nil {
			e.log.Debug("releasing the webhook cursor failed; its lease runs out", "endpoint", id, "error", err)
		}
	}
}

// record writes attempts' outcomes in batches: what came within 100 ms, or
// 64, per transaction. Once results is closed (Run ending) it writes what
// is left, under a context of its own: an attempt made is not made again
// for want of writing it down.
func (e *Events) record(ctx context.Context, results <-chan store.Attempt) {
	var batch []store.Attempt
	flush := func() {
		if len(batch) == 0 {
			return
		}
		rec, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		n, err := e.store.RecordAttempts(rec, e.owner, batch)
		cancel()
		switch {
		case err != nil:
			e.log.Warn("recording webhook attempts failed; the deliveries will be attempted again when their lease ends", "error", err)
		case n < len(batch):
			e.log.Warn("webhook deliveries were taken over by another replica after their lease ran out", "rows", len(batch)-n)
		}
		batch = batch[:0]
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case r, ok := <-results:
			if !ok {
				flush()
				return
			}
			if len(batch) == 0 {
				timer.Reset(gather)
			}
			batch = append(batch, r)
			if len(batch) >= claimBatch {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

// prune drops events past retention, settles as failed the deliveries of
// endpoints no replica should still have (gone from this configuration,
// and older than the give-up horizon, so that a rolling configuration
// change does not fail another replica's deliveries), and drops the
// cursors of endpoints gone from this configuration that no replica
// followed within retention.
func (e *Events) prune(ctx context.Context, now time.Time) {
	if n, err := e.store.PruneEvents(ctx, now.Add(-e.opts.Retention)); err != nil && ctx.Err() == nil {
		e.log.Warn("pruning events failed", "error", err)
	} else if n > 0 {
		e.log.Debug("pruned events", "rows", n)
	}
	n, err := e.store.FailOrphanDeliveries(ctx, e.endpointIDs, now.Add(-e.opts.GiveUpAfter))
	if err != nil && ctx.Err() == nil {
		e.log.Warn("settling the deliveries of removed webhook endpoints failed", "error", err)
	} else if n > 0 {
		e.log.Warn("webhook deliveries to endpoints no longer configured were given up", "rows", n)
	}
	if n, err := e.store.DropStaleCursors(ctx, e.endpointIDs, now.Add(-e.opts.Retention)); err != nil && ctx.Err() == nil {
		e.log.Warn("dropping the cursors of removed webhook endpoints failed", "error", err)
	} else if n > 0 {
		e.log.Info("dropped the cursors of webhook endpoints no replica has followed within events.retention", "cursors", n)
	}
}

// attempt delivers d once and says what came of it. An attempt cut short
// because Run is ending only releases the lease: it is not counted.
func (e *Events) attempt(ctx context.Context, d domain.WebhookDelivery) store.Attempt {
	ep := e.endpoints[d.Endpoint]
	now := e.now()
	out := store.Attempt{ID: d.ID, At: now}
	c := e.counts[ep.ID]
	status, err := e.post(ctx, ep, d.Event, now)
	out.Status = status
	switch {
	case err == nil:
		c.delivered.Add(1)
		e.log.Debug("webhook delivered", "endpoint", ep.ID, "event", d.Event.ID, "type", d.Event.Type, "attempt", d.Attempts+1)
		return out
	case ctx.Err() != nil:
		return store.Attempt{ID: d.ID, Release: true}
	case status == http.StatusGone:
		// Standard Webhooks: 410 asks the sender to stop.
		out.Failed, out.Error = true, err.Error()
	default:
		out.Error = err.Error()
		wait := Backoff(e.opts.FirstRetry, d.Attempts+1)
		if next := now.Add(wait); next.Sub(d.CreatedAt) <= e.opts.GiveUpAfter {
			out.Next = next
			c.retried.Add(1)
			e.log.Warn("webhook delivery failed; retrying", "endpoint", ep.ID, "host", hostOf(ep.URL), "event", d.Event.ID,
				"type", d.Event.Type, "attempt", d.Attempts+1, "retry_in", wait.Round(time.Second).String(), "error", out.Error)
			return out
		}
		out.Failed = true
	}
	c.failed.Add(1)
	e.log.Error("webhook delivery failed; giving up", "endpoint", ep.ID, "host", hostOf(ep.URL), "event", d.Event.ID,
		"type", d.Event.Type, "attempts", d.Attempts+1, "error", out.Error)
	return out
}

// Backoff is the wait before attempt n+1 after n failed ones: first, then
// doubling, capped at MaxBackoff, within ±20% so that endpoints coming back
// are not hit by every retry at once.
func Backoff(first time.Duration, failed int) time.Duration {
	d := float64(first) * math.Pow(2, float64(max(failed-1, 0)))
	d = min(d, float64(MaxBackoff))
	return time.Duration(d * (0.8 + 0.4*mathrand.Float64())) //nolint:gosec // G404: jitter, not a secret
}

// Body is the payload of a delivery: {"type", "timestamp", "data"}, and
// for an approval.webhookUrl endpoint the request as "approval" too.
func Body(ev domain.Event, legacy bool) ([]byte, error) {
	if legacy && ev.Type == domain.EventApprovalRequested {
		return legacyBody(ev)
	}
	// Written by hand: json.Marshal would scan the data again to compact
	// it, and the store wrote it with json.Marshal, compact already.
	if !json.Valid(ev.Data) {
		return nil, errors.New("event data is not JSON")
	}
	b := make([]byte, 0, len(ev.Data)+len(ev.Type)+80)
	b = append(b, `{"type":`...)
	b, err := appendJSONString(b, ev.Type)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"timestamp":"`...)
	b = ev.Time.UTC().AppendFormat(b, api.TimeFormat)
	b = append(b, `","data":`...)
	b = append(b, ev.Data...)
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string: as it is, quoted, when it
// holds nothing JSON escapes (an event type: lower-case words, dots and
// underscores), by json.Marshal otherwise.
func appendJSONString(b []byte, s string) ([]byte, error) {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			return append(b, q...), err
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

// legacyBody is Body for an approval.webhookUrl endpoint: the request as
// "approval" too.
func legacyBody(ev domain.Event) ([]byte, error) {
	p := struct {
		Type      string          `json:"type"`
		Timestamp api.Time        `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
		Approval  json.RawMessage `json:"approval,omitempty"`
	}{Type: ev.Type, Timestamp: api.NewTime(ev.Time), Data: ev.Data}
	var d struct {
		Approval json.RawMessage `json:"approval"`
	}
	if err := json.Unmarshal(ev.Data, &d); err == nil {
		p.Approval = d.Approval
	}
	return json.Marshal(p)
}

// Sign is the webhook-signature of a delivery: "v1," and the base64 of
// HMAC-SHA256 over "id.timestamp.body" with key.
func Sign(key []byte, id string, ts int64, body []byte) string {
	return string(appendSignature(nil, hmac.New(sha256.New, key), id, ts, body))
}

// appendSignature appends "v1," and the base64 of the HMAC m (reset
// first) over "id.timestamp.body".
func appendSignature(b []byte, m hash.Hash, id string, ts int64, body []byte) []byte {
	m.Reset()
	var head [96]byte
	h := append(head[:0], id...)
	h = append(h, '.')
	h = strconv.AppendInt(h, ts, 10)
	m.Write(append(h, '.'))
	m.Write(body)
	var sum [sha256.Size]byte
	b = append(b, "v1,"...)
	return base64.StdEncoding.AppendEncode(b, m.Sum(sum[:0]))
}

// signer signs with one key, reusing HMAC states (hmac.New derives the
// key's pads and allocates two digests each time).
type signer struct {
	key  []byte
	pool sync.Pool
}

func newSigner(key []byte) *signer {
	s := &signer{key: key}
	s.pool.New = func() any { return hmac.New(sha256.New, s.key) }
	return s
}

// appendSignature is Sign, appended to b.
func (s *signer) appendSignature(b []byte, id string, ts int64, body []byte) []byte {
	m, _ := s.pool.Get().(hash.Hash)
	b = appendSignature(b, m, id, ts, body)
	s.pool.Put(m)
	return b
}

// NewSignedRequest is a POST of the JSON body to rawURL with the Standard
// Webhooks headers: webhook-id id, webhook-timestamp ts and, with keys, a
// webhook-signature holding a signature by each.
func NewSignedRequest(ctx context.Context, rawURL, id string, ts int64, body []byte, keys [][]byte) (*http.Request, error) {
	signers := make([]*signer, len(keys))
	for i, k := range keys {
		signers[i] = &signer{key: k}
	}
	return newSignedRequest(ctx, rawURL, id, ts, body, signers)
}

// newSignedRequest is NewSignedRequest with a signer per key. The headers
// are set under their canonical names, as Header.Set would set them.
func newSignedRequest(ctx context.Context, rawURL, id string, ts int64, body []byte, signers []*signer) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, errors.New("invalid webhook URL")
	}
	h := make(http.Header, 5)
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{"kavach-webhook"}
	h["Webhook-Id"] = []string{id}
	h["Webhook-Timestamp"] = []string{strconv.FormatInt(ts, 10)}
	if len(signers) > 0 {
		var sigs []byte
		for i, s := range signers {
			if i > 0 {
				sigs = append(sigs, ' ')
			}
			if s.pool.New == nil {
				sigs = appendSignature(sigs, hmac.New(sha256.New, s.key), id, ts, body)
			} else {
				sigs = s.appendSignature(sigs, id, ts, body)
			}
		}
		h["Webhook-Signature"] = []string{string(sigs)}
	}
	req.Header = h
	return req, nil
}

// RequestError is err, from sending req, without req's URL: its path or
// query may hold the receiver's token.
func RequestError(req *http.Request, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, req.URL.Host, ue.Err)
	}
	return errors.New("request failed")
}

// post makes one attempt: the status the receiver answered (0 for none)
// and, unless 2xx, why it failed. Errors never carry the URL, whose path
// or query may hold the receiver's token.
func (e *Events) post(ctx context.Context, ep Endpoint, ev domain.Event, now time.Time) (int, error) {
	body, err := Body(e.withApprovalURL(ev), ep.Legacy)
	if err != nil {
		return 0, fmt.Errorf("encode: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := newSignedRequest(ctx, ep.URL, ev.ID, now.Unix(), body, e.signers[ep.ID])
	if err != nil {
		return 0, err
	}
	var status int
	if e.send != nil {
		status, err = e.send.do(req)
	} else {
		status, err = sendWith(e.http, req)
	}
	if err != nil {
		return 0, RequestError(req, err)
	}
	if status < 200 || status >= 300 {
		return status, fmt.Errorf("receiver answered %d %s", status, http.StatusText(status))
	}
	return status, nil
}

// sendWith sends req with c and returns the answer's status.
func sendWith(c *http.Client, req *http.Request) (int, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// count refreshes the queue counts /metrics reports.
func (e *Events) count(ctx context.Context) {
	n, oldest, err := e.store.PendingDeliveries(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Debug("counting webhook deliveries failed", "error", err)
		}
		return
	}
	e.mu.Lock()
	e.pending, e.oldest = n, oldest
	e.mu.Unlock()
}

// Stats are the delivery counters for /metrics.
type Stats struct {
	// Attempts counts this replica's attempts by endpoint and outcome
	// (delivered, retried, failed).
	Attempts map[string]map[string]uint64
	// Pending counts the pending deliveries in the database (every
	// replica's), as of the last count; OldestPending is the age of the
	// oldest of them (0 when none is).
	Pending       int64
	OldestPending time.Duration
}

// WebhookStats returns the delivery counters.
func (e *Events) WebhookStats() Stats {
	s := Stats{Attempts: map[string]map[string]uint64{}}
	for id, c := range e.counts {
		s.Attempts[id] = map[string]uint64{"delivered": c.delivered.Load(), "retried": c.retried.Load(), "failed": c.failed.Load()}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s.Pending = e.pending
	if !e.oldest.IsZero() {
		s.OldestPending = max(e.now().Sub(e.oldest), 0)
	}
	return s
}

// DeliveryQuery selects deliveries: raw query parameters.
type DeliveryQuery struct {
	State, Type, Endpoint string
	Page                  core.PageQuery
}

var deliveryStates = []string{domain.DeliveryPending, domain.DeliveryDelivered, domain.DeliveryFailed}

// ListDeliveries returns a page of deliveries, newest first.
func (e *Events) ListDeliveries(ctx context.Context, q DeliveryQuery) (api.WebhookDeliveryList, error) {
	if q.State != "" && !slices.Contains(deliveryStates, q.State) {
		return api.WebhookDeliveryList{}, core.Invalid("invalid_parameter", "state %q is not one of pending, delivered, failed", q.State)
	}
	if q.Type != "" && !slices.Contains(domain.EventTypes, q.Type) {
		return api.WebhookDeliveryList{}, core.Invalid("invalid_parameter", "type %q is not an event type", q.Type)
	}
	p, err := q.Page.Page("whd_")
	if err != nil {
		return api.WebhookDeliveryList{}, err
	}
	list, next, err := e.store.ListDeliveries(ctx, store.DeliveryFilter{State: q.State, Type: q.Type, Endpoint: q.Endpoint}, p)
	if err != nil {
		return api.WebhookDeliveryList{}, err
	}
	out := api.WebhookDeliveryList{Deliveries: make([]api.WebhookDelivery, len(list)), NextCursor: next}
	for i, d := range list {
		w := api.WebhookDelivery{ID: d.ID, EventID: d.Event.ID, Type: d.Event.Type, Endpoint: d.Endpoint, State: d.State,
			Attempts: d.Attempts, CreatedAt: api.NewTime(d.CreatedAt), LastAttemptAt: api.NewTimePtr(d.LastAttemptAt),
			LastStatus: d.LastStatus, LastError: d.LastError, DeliveredAt: api.NewTimePtr(d.DeliveredAt)}
		if ep, ok := e.endpoints[d.Endpoint]; ok {
			w.URL = hostOf(ep.URL)
		}
		if d.State == domain.DeliveryPending {
			w.NextAttemptAt = api.NewTimePtr(&d.NextAttemptAt)
		}
		out.Deliveries[i] = w
	}
	return out, nil
}

// FeedQuery selects the live feed: raw query parameters and the
// Last-Event-ID header.
type FeedQuery struct {
	// Types is a comma-separated list of event types (empty: all).
	Types   string
	AgentID string
	// After is the seq to resume after (Last-Event-ID, or the after
	// parameter); empty starts with the next event committed.
	After string
}

// Feed is a checked FeedQuery.
type Feed struct {
	Filter store.EventFilter
	After  int64
}

// OpenFeed checks q and returns where the feed starts.
func (e *Events) OpenFeed(ctx context.Context, q FeedQuery) (Feed, error) {
	var f Feed
	if q.Types != "" {
		for _, t := range strings.Split(q.Types, ",") {
			t = strings.TrimSpace(t)
			if !slices.Contains(domain.EventTypes, t) {
				return Feed{}, core.Invalid("invalid_parameter", "types: %q is not an event type (%s)", t, strings.Join(domain.EventTypes, ", "))
			}
			if !slices.Contains(f.Filter.Types, t) {
				f.Filter.Types = append(f.Filter.Types, t)
			}
		}
	}
	if q.AgentID != "" {
		if err := core.CheckID("agentId", q.AgentID); err != nil {
			return Feed{}, err
		}
		f.Filter.AgentID = q.AgentID
	}
	if q.After == "" {
		seq, err := e.store.LatestEvent(ctx)
		if err != nil {
			return Feed{}, err
		}
		f.After = seq
		return f, nil
	}
	n, err := strconv.ParseInt(q.After, 10, 64)
	if err != nil || n < 0 {
		return Feed{}, core.Invalid("invalid_parameter", "Last-Event-ID (or after) must be the seq of an event, a whole number, not %q", q.After)
	}
	latest, err := e.store.LatestEvent(ctx)
	if err != nil {
		return Feed{}, err
	}
	if n > latest {
		return Feed{}, core.Invalid("invalid_parameter", "Last-Event-ID (or after) %d is beyond the newest event (%d): the database was replaced or restored; reconnect without it", n, latest)
	}
	f.After = n
	return f, nil
}

// FeedBatch is the most events Next returns at once.
const FeedBatch = 500

// Next returns the events after f.After, oldest first, and moves f past
// them: past every event committed so far when fewer than FeedBatch
// match, so that a filtered feed never scans the same events twice.
func (e *Events) Next(ctx context.Context, f *Feed) ([]api.Event, error) {
	// Events are numbered in commit order under one lock: every event up
	// to the newest visible one has committed, and none will appear
	// below it.
	latest, err := e.store.LatestEvent(ctx)
	if err != nil {
		return nil, err
	}
	if latest <= f.After {
		return nil, nil
	}
	list, err := e.store.EventsSince(ctx, f.After, latest, f.Filter, FeedBatch)
	if err != nil {
		return nil, err
	}
	out := make([]api.Event, len(list))
	for i, ev := range list {
		out[i] = api.Event{Seq: ev.Seq, ID: ev.ID, Type: ev.Type, Timestamp: api.NewTime(ev.Time), Data: ev.Data}
	}
	switch {
	case len(list) == FeedBatch:
		f.After = list[len(list)-1].Seq
	default:
		f.After = latest
	}
	return out, nil
}
