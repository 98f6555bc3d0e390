package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

// Events and the webhook outbox. An event is written in the transaction of
// the change it reports: a change that commits has its event, and one that
// rolls back has none, whatever happens to the process after. The events
// table is the outbox: each endpoint's first attempts follow a cursor over
// it (cursors.go), and an attempt that failed queues a retry row in
// webhook_deliveries, which delivery workers (service/events) lease when
// due, on any replica, and record what came of each attempt.

// Subscription is one webhook endpoint as the store sees it: its ID and
// the event types it receives.
type Subscription struct {
	Endpoint string
	Types    []string
}

// eventSinks are what the store records: the subscriptions, and which
// decision events (authorize.*) are recorded though nothing subscribes.
type eventSinks struct {
	subs []Subscription
	// decisions holds the decision event types recorded.
	decisions map[string]bool
	// nudge hears, without blocking, that deliveries were committed.
	nudge chan struct{}
}

func newEventSinks(subs []Subscription, decisions []string) *eventSinks {
	e := &eventSinks{subs: subs, decisions: map[string]bool{}, nudge: make(chan struct{}, 1)}
	for _, t := range decisions {
		e.decisions[t] = true
	}
	for _, s := range subs {
		for _, t := range s.Types {
			if domain.IsDecisionEvent(t) {
				e.decisions[t] = true
			}
		}
	}
	return e
}

// records reports whether events of type typ are recorded: every lifecycle
// event, and decision events something asks for.
func (e *eventSinks) records(typ string) bool {
	return !domain.IsDecisionEvent(typ) || e.decisions[typ]
}

// subscribed reports whether an endpoint receives events of type typ.
func (e *eventSinks) subscribed(typ string) bool {
	for _, s := range e.subs {
		if slices.Contains(s.Types, typ) {
			return true
		}
	}
	return false
}

// Deliveries returns a channel that receives, without blocking the writer,
// after a transaction with events some endpoint subscribes to commits on
// this replica.
func (s *Store) Deliveries() <-chan struct{} { return s.sinks.nudge }

// eventTypes maps the audit event actions that report a change to the
// event type announcing it.
var eventTypes = map[string]string{
	"agent.create":      domain.EventAgentCreated,
	"agent.update":      domain.EventAgentUpdated,
	"agent.rotate":      domain.EventAgentRotated,
	"agent.revoke":      domain.EventAgentRevoked,
	"agent.suspend":     domain.EventAgentSuspended,
	"agent.resume":      domain.EventAgentResumed,
	"agent.trust":       domain.EventAgentTrustChanged,
	"delegation.create": domain.EventDelegationCreated,
	"delegation.revoke": domain.EventDelegationRevoked,
	"approval.approve":  domain.EventApprovalResolved,
	"approval.deny":     domain.EventApprovalResolved,
	"anomaly.detected":  domain.EventAnomalyDetected,
	"key.create":        domain.EventKeyCreated,
	"key.revoke":        domain.EventKeyRevoked,
}

// emitChange records the event an audited change announces, if its action
// announces one. The data names the target, the agent and owner, the
// actor and the audit row; changes are the audit row's (never a secret).
func (s *Store) emitChange(ctx context.Context, tx *txn, row domain.AuditEntry) error {
	typ, ok := eventTypes[row.Action]
	if !ok || row.Result != domain.ResultAllowed {
		return nil
	}
	data := map[string]any{"id": row.Resource, "auditId": row.ID, "actor": actorData(row.Actor), "reason": row.Reason}
	if row.AgentID != "" {
		data["agentId"] = row.AgentID
	}
	if row.OwnerID != "" {
		data["ownerId"] = row.OwnerID
	}
	if len(row.Changes) > 0 {
		data["changes"] = json.RawMessage(row.Changes)
	}
	if typ == domain.EventApprovalResolved {
		data["approvalId"] = row.Resource
		data["status"] = map[string]string{"approval.approve": domain.ApprovalApproved, "approval.deny": domain.ApprovalDenied}[row.Action]
	}
	return s.emit(ctx, tx, typ, row.AgentID, row.Timestamp, data)
}

// decisionData is the data of an authorize.* event. Arguments are left
// out: the audit row has them, for those allowed to read it.
type decisionData struct {
	AgentID    string            `json:"agentId"`
	OwnerID    string            `json:"ownerId"`
	Action     string            `json:"action"`
	Resource   string            `json:"resource"`
	Allowed    bool              `json:"allowed"`
	Code       string            `json:"code"`
	Reason     string            `json:"reason"`
	AuditID    string            `json:"auditId"`
	ApprovalID string            `json:"approvalId,omitempty"`
	Actor      map[string]string `json:"actor"`
}

// decisionEvent is the event a committed decision row announces, if its
// type is recorded.
func (s *Store) decisionEvent(row domain.AuditEntry) (pendingEvent, bool) {
	typ := domain.EventAuthorizeDenied
	if row.Result == domain.ResultAllowed {
		typ = domain.EventAuthorizeAllowed
	}
	if row.Kind != domain.KindDecision || !s.sinks.decisions[typ] {
		return pendingEvent{}, false
	}
	return pendingEvent{typ: typ, agentID: row.AgentID, at: row.Timestamp, data: decisionData{AgentID: row.AgentID,
		OwnerID: row.OwnerID, Action: row.Action, Resource: row.Resource, Allowed: row.Result == domain.ResultAllowed,
		Code: row.Code, Reason: row.Reason, AuditID: row.ID, ApprovalID: row.ApprovalID, Actor: actorData(row.Actor)}}, true
}

// emitDecision records authorize.allowed or authorize.denied for a
// decision row committed on its own, when that type is recorded.
func (s *Store) emitDecision(ctx context.Context, tx *txn, row domain.AuditEntry) error {
	if ev, ok := s.decisionEvent(row); ok {
		return s.emitAll(ctx, tx, []pendingEvent{ev})
	}
	return nil
}

// emitApprovalRequested records approval.requested for a new request. The
// request is in "approval" too, in the API's shape, as the approval
// webhook of earlier versions sent it.
func (s *Store) emitApprovalRequested(ctx context.Context, tx *txn, a domain.Approval) error {
	appr := map[string]any{"id": a.ID, "agentId": a.AgentID, "ownerId": a.OwnerID, "action": a.Action, "resource": a.Resource,
		"status": domain.ApprovalPending, "expiresAt": api.NewTime(a.ExpiresAt), "createdAt": api.NewTime(a.CreatedAt)}
	if len(a.Arguments) > 0 {
		appr["arguments"] = json.RawMessage(a.Arguments)
	}
	data := map[string]any{"approvalId": a.ID, "agentId": a.AgentID, "ownerId": a.OwnerID, "action": a.Action,
		"resource": a.Resource, "expiresAt": api.NewTime(a.ExpiresAt), "approval": appr}
	return s.emit(ctx, tx, domain.EventApprovalRequested, a.AgentID, a.CreatedAt, data)
}

func actorData(a domain.Actor) map[string]string {
	out := map[string]string{"type": a.Type}
	if a.ID != "" {
		out["id"] = a.ID
	}
	if a.Name != "" {
		out["name"] = a.Name
	}
	if a.OnBehalfOf != "" {
		out["onBehalfOf"] = a.OnBehalfOf
	}
	return out
}

// pendingEvent is an event to write.
type pendingEvent struct {
	typ, agentID string
	at           time.Time
	data         any
}

// emit writes one event inside tx, if its type is recorded.
func (s *Store) emit(ctx context.Context, tx *txn, typ, agentID string, at time.Time, data any) error {
	if !s.sinks.records(typ) {
		return nil
	}
	return s.emitAll(ctx, tx, []pendingEvent{{typ: typ, agentID: agentID, at: at, data: data}})
}

// emitRows is how many events, or retries, one INSERT writes.
const emitRows = 100

// emitAll writes events inside tx: a multi-row INSERT per hundred (a
// group-commit batch writes its decisions' events at once). No delivery
// row is written: each endpoint's worker reads the events after its cursor
// (cursors.go), and only a failed first attempt queues a row.
func (s *Store) emitAll(ctx context.Context, tx *txn, evs []pendingEvent) error {
	if len(evs) == 0 {
		return nil
	}
	// The change feed's lock numbers events too (one lock, so that no two
	// transactions take two in opposite orders): seq is then handed out in
	// commit order, and a reader resuming after a seq misses nothing
	// committed later.
	if err := s.lockFeed(ctx, tx); err != nil {
		return fmt.Errorf("lock events: %w", err)
	}
	now := s.now()
	for len(evs) > 0 {
		chunk := evs[:min(len(evs), emitRows)]
		evs = evs[len(chunk):]
		args := make([]any, 0, 5*len(chunk))
		for _, ev := range chunk {
			body, err := json.Marshal(ev.data)
			if err != nil {
				return fmt.Errorf("encode event %s: %w", ev.typ, err)
			}
			args = append(args, s.ids.next("msg_", now), ev.typ, ev.agentID, toMillis(ev.at), string(body))
			// The endpoints' workers read it from their cursors.
			tx.deliveries = tx.deliveries || s.sinks.subscribed(ev.typ)
		}
		if tx.insertEvent != nil {
			// In process, a prepared statement per row costs less than
			// parsing one of many rows.
			for i := 0; i < len(args); i += 5 {
				if _, err := tx.insertEvent.ExecContext(ctx, args[i:i+5]...); err != nil {
					return fmt.Errorf("record events: %w", err)
				}
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO events (id, type, agent_id, created_at, data) VALUES `+
			values(5, len(chunk)), args...); err != nil {
			return fmt.Errorf("record events: %w", err)
		}
	}
	return nil
}

// eventInsert is the one-row INSERT of an event, prepared by the group
// commit where the dialect is in process.
const eventInsert = `INSERT INTO events (id, type, agent_id, created_at, data) VALUES (?, ?, ?, ?, ?)`

// values is the VALUES list of rows rows of n placeholders each, followed
// by the constants given.
func values(n, rows int, constants ...string) string {
	row := "(?" + strings.Repeat(", ?", n-1)
	for _, c := range constants {
		row += ", " + c
	}
	row += ")"
	return row + strings.Repeat(", "+row, rows-1)
}

// nudgeDeliveries tells the delivery worker, without waiting, that rows
// were committed.
func (s *Store) nudgeDeliveries() {
	select {
	case s.sinks.nudge <- struct{}{}:
	default:
	}
}

const eventColumns = `seq, id, type, agent_id, created_at, data`

func scanEvent(row scanner) (domain.Event, error) {
	var e domain.Event
	var at int64
	var data string
	if err := row.Scan(&e.Seq, &e.ID, &e.Type, &e.AgentID, &at, &data); err != nil {
		return domain.Event{}, err
	}
	e.Time, e.Data = fromMillis(at), json.RawMessage(data)
	return e, nil
}

// EventFilter selects events: of these types (none: all) and of one agent.
type EventFilter struct {
	Types   []string
	AgentID string
}

// EventsSince returns up to limit events after seq after, up to upTo (0:
// no bound), oldest first.
func (s *Store) EventsSince(ctx context.Context, after, upTo int64, f EventFilter, limit int) ([]domain.Event, error) {
	where, args := []string{"seq > ?"}, []any{after}
	if upTo > 0 {
		where, args = append(where, "seq <= ?"), append(args, upTo)
	}
	if len(f.Types) > 0 {
		where = append(where, "type IN (?"+strings.Repeat(", ?", len(f.Types)-1)+")")
		for _, t := range f.Types {
			args = append(args, t)
		}
	}
	if f.AgentID != "" {
		where, args = append(where, "agent_id = ?"), append(args, f.AgentID)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE `+strings.Join(where, " AND ")+
		` ORDER BY seq LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	out := []domain.Event{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// LatestEvent returns the newest event's seq (0 if none).
func (s *Store) LatestEvent(ctx context.Context) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var seq int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read events: %w", err)
	}
	return seq, nil
}

const deliveryColumns = `d.id, d.endpoint, d.state, d.attempts, d.created_at, d.next_attempt_at, d.last_attempt_at,
	d.last_status, d.last_error, d.delivered_at, e.seq, e.id, e.type, e.agent_id, e.created_at, e.data`

func scanDelivery(row scanner) (domain.WebhookDelivery, error) {
	var d domain.WebhookDelivery
	var created, next, eventAt int64
	var lastAt, delivered, status sql.NullInt64
	var data string
	err := row.Scan(&d.ID, &d.Endpoint, &d.State, &d.Attempts, &created, &next, &lastAt, &status, &d.LastError, &delivered,
		&d.Event.Seq, &d.Event.ID, &d.Event.Type, &d.Event.AgentID, &eventAt, &data)
	if err != nil {
		return domain.WebhookDelivery{}, err
	}
	d.CreatedAt, d.NextAttemptAt, d.LastAttemptAt, d.DeliveredAt = fromMillis(created), fromMillis(next), timePtr(lastAt), timePtr(delivered)
	d.LastStatus = int(status.Int64)
	d.Event.Time, d.Event.Data = fromMillis(eventAt), json.RawMessage(data)
	return d, nil
}

// ClaimDeliveries leases up to limit pending deliveries to endpoint that
// are due, to owner until now+lease, and returns them with their events. A row another
// replica holds a live lease on is skipped; one whose lease ran out (its
// holder died mid-attempt) is taken over, so it may be delivered twice,
// under the same id: at least once.
func (s *Store) ClaimDeliveries(ctx context.Context, owner, endpoint string, lease time.Duration, limit int) ([]domain.WebhookDelivery, error) {
	now := s.now()
	// Most polls find nothing due: ask a reader first, and take the writer
	// (SQLite's only one, which the audit rows need) only when there is.
	probe, cancel := s.withTimeout(ctx)
	var one int
	err := s.r.QueryRowContext(probe, `SELECT 1 FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ?
		AND lease_until <= ? AND endpoint = ? LIMIT 1`, toMillis(now), toMillis(now), endpoint).Scan(&one)
	cancel()
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	var out []domain.WebhookDelivery
	err = s.withTx(ctx, func(tx *txn) error {
		out = nil
		ids, err := dueDeliveries(ctx, tx, s.dialect.skipLocked(), endpoint, now, limit)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		in := "(?" + strings.Repeat(", ?", len(ids)-1) + ")"
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ? WHERE id IN `+in,
			append([]any{owner, toMillis(now.Add(lease))}, ids...)...); err != nil {
			return fmt.Errorf("claim webhook deliveries: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq
			WHERE d.id IN `+in+` ORDER BY d.next_attempt_at`, ids...)
		if err != nil {
			return fmt.Errorf("claim webhook deliveries: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				return fmt.Errorf("claim webhook deliveries: %w", err)
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, err
}

// dueDeliveries returns the IDs of up to limit pending deliveries due at
// now whose lease ran out, locked (suffix) for the claiming transaction.
func dueDeliveries(ctx context.Context, tx *txn, suffix, endpoint string, now time.Time, limit int) ([]any, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ?
		AND lease_until <= ? AND endpoint = ? ORDER BY next_attempt_at LIMIT ?`+suffix, toMillis(now), toMillis(now), endpoint, limit)
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	defer rows.Close()
	var ids []any
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("claim webhook deliveries: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	return ids, nil
}

// Attempt is what came of one delivery attempt.
type Attempt struct {
	// ID is the delivery's.
	ID string
	At time.Time
	// Status is the receiver's HTTP status; 0 when none answered.
	Status int
	Error  string
	// Next is when to try again; zero for delivered, or for given up
	// (with Failed).
	Next   time.Time
	Failed bool
	// Release gives the lease back without counting an attempt (one cut
	// short by a shutdown): the delivery is due again at once.
	Release bool
}

// RecordAttempts stores the outcomes of attempts on deliveries owner
// leased, in one transaction, and returns how many it stored: a delivery
// whose lease owner no longer held (it ran out, and another replica took
// the row over) is left as that replica has it.
func (s *Store) RecordAttempts(ctx context.Context, owner string, attempts []Attempt) (int, error) {
	var n int
	err := s.withTx(ctx, func(tx *txn) error {
		n = 0
		for _, a := range attempts {
			if a.Release {
				res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET lease_owner = '', lease_until = 0
					WHERE id = ? AND lease_owner = ? AND state = 'pending'`, a.ID, owner)
				if err != nil {
					return fmt.Errorf("release webhook delivery: %w", err)
				}
				k, _ := res.RowsAffected()
				n += int(k)
				continue
			}
			state, next, delivered := domain.DeliveryPending, toMillis(a.Next), sql.NullInt64{}
			switch {
			case a.Failed:
				state, next = domain.DeliveryFailed, toMillis(a.At)
			case a.Next.IsZero():
				state, next, delivered = domain.DeliveryDelivered, toMillis(a.At), sql.NullInt64{Int64: toMillis(a.At), Valid: true}
			}
			res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?,
				last_attempt_at = ?, last_status = ?, last_error = ?, delivered_at = ?, lease_owner = '', lease_until = 0
				WHERE id = ? AND lease_owner = ? AND state = 'pending'`,
				state, next, toMillis(a.At), sql.NullInt64{Int64: int64(a.Status), Valid: a.Status != 0}, truncate(a.Error, 200),
				delivered, a.ID, owner)
			if err != nil {
				return fmt.Errorf("record webhook attempt: %w", err)
			}
			k, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("record webhook attempt: %w", err)
			}
			n += int(k)
		}
		return nil
	})
	return n, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// DeliveryFilter selects deliveries.
type DeliveryFilter struct {
	State, Type, Endpoint string
}

// ListDeliveries returns a page of deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, f DeliveryFilter, p Page) ([]domain.WebhookDelivery, string, error) {
	if err := p.check("list webhook deliveries"); err != nil {
		return nil, "", err
	}
	var where []string
	var args []any
	if f.State != "" {
		where, args = append(where, "d.state = ?"), append(args, f.State)
	}
	if f.Type != "" {
		where, args = append(where, "e.type = ?"), append(args, f.Type)
	}
	if f.Endpoint != "" {
		where, args = append(where, "d.endpoint = ?"), append(args, f.Endpoint)
	}
	if p.Cursor != "" {
		where, args = append(where, "d.id < ?"), append(args, p.Cursor)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq`+
		cond+` ORDER BY d.id DESC LIMIT ?`, append(args, p.Limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook deliveries: %w", err)
	}
	defer rows.Close()
	list := []domain.WebhookDelivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list webhook deliveries: %w", err)
		}
		list = append(list, d)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list webhook deliveries: %w", err)
	}
	list, next := cutPage(list, p.Limit, func(d domain.WebhookDelivery) string { return d.ID })
	return list, next, nil
}

// PendingDeliveries returns how many deliveries are pending, on every
// replica, and when the oldest of them was created (zero when none is):
// the retries pending, and the events subscribed to after each of this
// replica's endpoints' cursors, not yet attempted.
func (s *Store) PendingDeliveries(ctx context.Context) (int64, time.Time, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var total int64
	var oldest time.Time
	add := func(n int64, first sql.NullInt64) {
		total += n
		if first.Valid && (oldest.IsZero() || fromMillis(first.Int64).Before(oldest)) {
			oldest = fromMillis(first.Int64)
		}
	}
	var n int64
	var first sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_at) FROM webhook_deliveries WHERE state = 'pending'`).Scan(&n, &first)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count webhook deliveries: %w", err)
	}
	add(n, first)
	for _, sub := range s.sinks.subs {
		if len(sub.Types) == 0 {
			continue
		}
		args := []any{sub.Endpoint}
		for _, t := range sub.Types {
			args = append(args, t)
		}
		err := s.r.QueryRowContext(ctx, `SELECT COUNT(*), MIN(e.created_at) FROM events e
			WHERE e.seq > (SELECT seq FROM webhook_cursors WHERE endpoint = ?) AND e.type IN (?`+strings.Repeat(", ?", len(sub.Types)-1)+`)`,
			args...).Scan(&n, &first)
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("count webhook deliveries: %w", err)
		}
		add(n, first)
	}
	return total, oldest, nil
}

// pruneBatch is how many rows one pruning statement deletes, and
// pruneTimeout how long it may take: pruning a large backlog is many
// short transactions, never one that outlasts database.timeout.
const (
	pruneBatch   = 5000
	pruneTimeout = 30 * time.Second
)

// PruneEvents deletes the deliveries settled (delivered or failed) and
// created before the given time, then the events created before it, up to
// the event of the oldest pending delivery (which keeps its event), up to
// the lowest webhook cursor a replica followed since that time (an
// endpoint's events not yet attempted are kept; an endpoint gone longer
// does not hold pruning back) and never the newest (so that numbering
// never goes back). It works in
// batches and returns the events deleted. Its failures do not count
// against the database's health.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	batch := func(what, query string, args ...any) (int64, error) {
		var total int64
		for ctx.Err() == nil {
			bctx, cancel := context.WithTimeout(ctx, pruneTimeout)
			res, err := s.w.ExecContext(bctx, query, args...)
			cancel()
			if err != nil {
				return total, fmt.Errorf("prune %s: %w", what, err)
			}
			n, _ := res.RowsAffected()
			total += n
			if n < pruneBatch {
				break
			}
		}
		return total, ctx.Err()
	}
	// A batch is chosen in a derived table: MySQL takes no LIMIT in an IN
	// subquery, nor a subquery on the table a DELETE deletes from.
	limit := " LIMIT " + fmt.Sprint(pruneBatch)
	if _, err := batch("webhook deliveries", `DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM (SELECT id FROM webhook_deliveries
		WHERE id < ? AND state <> 'pending' ORDER BY id`+limit+`) AS batch)`, idAt("whd_", before)); err != nil {
		return 0, err
	}
	// Events are created in seq order (near enough: a transaction's
	// clock), so the first one not old enough bounds those that are; the
	// scan to it reads only rows about to go.
	var bound sql.NullInt64
	bctx, cancel := context.WithTimeout(ctx, pruneTimeout)
	err := s.r.QueryRowContext(bctx, `SELECT MIN(b) FROM (
			SELECT COALESCE((SELECT seq FROM events WHERE created_at >= ? ORDER BY seq LIMIT 1), (SELECT MAX(seq) FROM events)) AS b
			UNION ALL SELECT MIN(event_seq) FROM webhook_deliveries WHERE state = 'pending'
			UNION ALL SELECT MIN(seq) + 1 FROM webhook_cursors WHERE updated_at >= ?) AS bounds`, toMillis(before), toMillis(before)).Scan(&bound)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	if !bound.Valid {
		return 0, nil // no events
	}
	return batch("events", `DELETE FROM events WHERE seq IN (SELECT seq FROM (SELECT seq FROM events WHERE seq < ? ORDER BY seq`+limit+`) AS batch)`, bound.Int64)
}

// FailOrphanDeliveries settles as failed the pending deliveries created
// before the given time to endpoints not in known.
func (s *Store) FailOrphanDeliveries(ctx context.Context, known []string, before time.Time) (int64, error) {
	cond, args := endpointNotIn(known, toMillis(s.now()), toMillis(before))
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.w.ExecContext(ctx, `UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = ?,
		last_error = 'endpoint no longer configured' WHERE state = 'pending' AND created_at < ?`+cond, args...)
	if err != nil {
		return 0, fmt.Errorf("settle orphaned webhook deliveries: %w", err)
	}
	return res.RowsAffected()
}

// endpointNotIn is the condition " AND endpoint NOT IN (…)" over known
// (nothing when known is empty), and args followed by its values.
func endpointNotIn(known []string, args ...any) (string, []any) {
	if len(known) == 0 {
		return "", args
	}
	for _, k := range known {
		args = append(args, k)
	}
	return " AND endpoint NOT IN (?" + strings.Repeat(", ?", len(known)-1) + ")", args
}
