// Package kavachos brings the data of a KavachOS v0.2.1 database into
// Kavach (kavach import --kavachos): agents with their IDs and token
// hashes, so that every token keeps working, their permissions and
// constraints, delegations, pending approvals and the audit history. It
// reads the source a page at a time and writes a batch per transaction;
// where Kavach's meaning differs from KavachOS's, it translates exactly
// when it can, and otherwise keeps Kavach's stricter meaning and reports
// the permission.
package kavachos

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/store"
)

// Store is what an import writes.
type Store interface {
	ImportAgents(ctx context.Context, agents []domain.Agent, dryRun bool) (store.ImportResult, error)
	ImportDelegations(ctx context.Context, ds []domain.Delegation, dryRun bool) (store.ImportResult, error)
	ImportApprovals(ctx context.Context, as []domain.Approval, dryRun bool) (store.ImportResult, error)
	ImportAudit(ctx context.Context, rows []domain.AuditEntry, dryRun bool) (store.ImportResult, error)
	RecordEvent(ctx context.Context, e store.Event) (domain.AuditEntry, error)
}

// Options configures Import.
type Options struct {
	// DryRun writes nothing: every batch is written and rolled back, so
	// the report says what a run would do.
	DryRun bool
	// BatchSize is the number of agents (and delegations, approvals) read
	// and written per transaction, five times as many audit rows
	// (default 5000).
	BatchSize int
	// TimeZone is the IANA zone the KavachOS server ran in: its time
	// windows were read in local time. Empty is UTC.
	TimeZone string
	// Findings, if set, receives the report as JSON, every finding in it.
	Findings io.Writer
	// Progress, if set, hears how far each phase is.
	Progress *Progress
	// Now is the clock (the revocation time of delegations KavachOS
	// revoked without recording when); nil means time.Now.
	Now func() time.Time
}

// actor is who the import's writes and rows are recorded as.
func actor() domain.Actor {
	return domain.Actor{Type: domain.ActorImport, ID: "kavachos", Name: "kavach import --kavachos"}
}

// Import copies src into st and returns the report. source names the
// source in the report (without its password).
func Import(ctx context.Context, src *Source, st Store, source string, opts Options) (*Report, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TimeZone != "" {
		if _, err := time.LoadLocation(opts.TimeZone); err != nil || opts.TimeZone == "Local" {
			return nil, fmt.Errorf("time zone %q is not an IANA time zone name", opts.TimeZone)
		}
	}
	// Whatever the caller passed, no password reaches the report or the
	// audit event.
	source = store.Redact(source)
	t, err := newTranslator(ctx, opts.TimeZone)
	if err != nil {
		return nil, err
	}
	r := &Report{Source: source, DryRun: opts.DryRun, IDs: map[string]string{}}
	r.Notes = append(r.Notes, commonNotes...)
	zone := opts.TimeZone
	if zone == "" {
		zone = "UTC"
	}
	r.Notes = append(r.Notes, fmt.Sprintf("timeWindow: read in %s (--timezone), the KavachOS server's local time; end minute included there, excluded in Kavach (translated)", zone),
		"approvals: pending requests are imported; resolved ones are not (KavachOS never let an approval allow a call)")
	im := &importer{src: src, st: st, t: t, opts: opts, r: r, f: newFindings(r, opts.Findings), lost: map[string]bool{}, mine: newAgentSet(),
		own: map[string][]domain.Permission{}, held: map[string][]*held{}}
	ctx = store.WithActor(ctx, actor())
	for _, phase := range []func(context.Context) error{im.agents, im.delegations, im.approvals, im.audit} {
		if err := phase(ctx); err != nil {
			return r, err
		}
	}
	added := r.Agents.Added + r.Delegs.Added + r.Approvals.Added + r.Audit.Added
	// A run that adds nothing (the second) leaves no trace either.
	if !opts.DryRun && added > 0 {
		if _, err := st.RecordEvent(ctx, store.Event{Action: "import.kavachos", Target: source,
			Reason: "data imported from KavachOS", Changes: map[string]any{"agents": r.Agents, "permissions": r.Perms,
				"delegations": r.Delegs, "approvals": r.Approvals, "audit": r.Audit, "findings": r.Findings}}); err != nil {
			return r, err
		}
	}
	return r, im.f.finish()
}

type importer struct {
	src  *Source
	st   Store
	t    *translator
	opts Options
	r    *Report
	f    *findings
	// lost are the agents not imported: what refers to them is not either.
	lost map[string]bool
	// mine are the agents this run added, or found present as the same
	// agent: delegations, approvals and audit rows are written only for
	// them, never for an agent of the target the source merely names.
	mine *agentSet
	// own caches delegators' permissions as imported; held the grants
	// each agent received, by its ID, for the delegations that follow.
	own  map[string][]domain.Permission
	held map[string][]*held
}

// held is a delegation imported, as the delegations from its receiver see it.
type held struct {
	id              string
	depth, maxDepth int
	ended           bool // revoked, or expired by the import
	grants          []domain.Grant
}

// cursor reads rows of one kind, up to limit at a time; none at the end.
type cursor[T any] interface {
	Next(limit int) ([]T, error)
	Close() error
}

// drain writes what cur reads, n rows a batch, then closes it.
func drain[T any](cur cursor[T], n int, write func([]T) error) (err error) {
	defer func() { err = errors.Join(err, cur.Close()) }()
	for {
		rows, err := cur.Next(n)
		if err != nil || len(rows) == 0 {
			return err
		}
		if err := write(rows); err != nil {
			return err
		}
	}
}

// keyset is a cursor over a table read a page at a time, in ID order,
// from the last ID read: for tables KavachOS keys by ID and that have no
// order of their own to keep.
type keyset[T any] struct {
	after string
	id    func(T) string
	read  func(after string, limit int) ([]T, error)
}

func (k *keyset[T]) Next(limit int) ([]T, error) {
	rows, err := k.read(k.after, limit)
	if len(rows) > 0 {
		k.after = k.id(rows[len(rows)-1])
	}
	return rows, err
}

func (k *keyset[T]) Close() error { return nil }

// phase starts the progress of a phase over the rows of table.
func (im *importer) phase(ctx context.Context, name, table, where string) error {
	total, err := im.src.count(ctx, table, where)
	if err != nil {
		return err
	}
	im.opts.Progress.Start(name, total)
	return nil
}

func (c *Count) add(res store.ImportResult, read int) {
	c.Read += int64(read)
	c.Added += int64(res.Added)
	c.Skipped += int64(len(res.Skipped))
	c.NotImported += int64(len(res.Conflicts))
}

func (im *importer) agents(ctx context.Context) error {
	if err := im.phase(ctx, "agents", "kavach_agents", ""); err != nil {
		return err
	}
	defer im.opts.Progress.Done()
	cur, err := im.src.agentCursor(ctx)
	if err != nil {
		return err
	}
	return drain(cur, im.opts.BatchSize, func(rows []agentRow) error { return im.agentBatch(ctx, rows) })
}

// agentBatch translates and writes one batch of agents.
func (im *importer) agentBatch(ctx context.Context, rows []agentRow) error {
	batch := make([]domain.Agent, 0, len(rows))
	for _, row := range rows {
		a, ok := im.agent(row)
		if !ok {
			im.lost[row.ID] = true
			im.r.Agents.NotImported++
			continue
		}
		batch = append(batch, a)
	}
	res, err := im.st.ImportAgents(ctx, batch, im.opts.DryRun)
	if err != nil {
		return err
	}
	im.r.Agents.add(res, len(rows))
	for _, id := range res.Conflicts {
		im.lost[id] = true
		im.f.add(Finding{Kind: "token_conflict", AgentID: id, Detail: "another agent in Kavach has this token's hash: not imported"})
	}
	for _, id := range res.Foreign {
		im.lost[id] = true
		im.r.Agents.NotImported++
		im.f.add(Finding{Kind: "agent_id_taken", AgentID: id, Detail: "another agent in Kavach (another token hash) has this ID: not imported"})
	}
	for _, a := range batch {
		if !slices.Contains(res.Conflicts, a.ID) && !slices.Contains(res.Foreign, a.ID) {
			im.mine.add(a.ID)
		}
	}
	im.countPermissions(rows, batch, res)
	im.opts.Progress.Add(int64(len(rows)))
	return nil
}

// countPermissions counts the permissions of a batch: read, and added
// with the agents added (agents already present keep theirs).
func (im *importer) countPermissions(rows []agentRow, batch []domain.Agent, res store.ImportResult) {
	for _, row := range rows {
		im.r.Perms.Read += int64(len(row.Permissions))
		im.r.Perms.NotImported += int64(len(row.Permissions))
	}
	for _, a := range batch {
		n := int64(len(a.Permissions))
		im.r.Perms.NotImported -= n
		switch {
		case slices.Contains(res.Skipped, a.ID):
			im.r.Perms.Skipped += n
		case slices.Contains(res.Conflicts, a.ID), slices.Contains(res.Foreign, a.ID):
			im.r.Perms.NotImported += n
		default:
			im.r.Perms.Added += n
		}
	}
}

// agent translates one KavachOS agent; false when it cannot be imported.
func (im *importer) agent(row agentRow) (domain.Agent, bool) {
	lose := func(why string) (domain.Agent, bool) {
		im.f.add(Finding{Kind: "agent_not_imported", AgentID: row.ID, Detail: why})
		return domain.Agent{}, false
	}
	switch {
	case !store.IsUUID(row.ID):
		// KavachOS makes its IDs with crypto.randomUUID(): another ID
		// (an agt_… one, say) was not made by KavachOS, and could name an
		// agent Kavach made.
		return lose("its ID is not a UUID, as KavachOS makes them")
	case row.Type != "autonomous" && row.Type != "delegated" && row.Type != "service":
		return lose(fmt.Sprintf("unknown type %q", row.Type))
	case !sha256Hex(row.TokenHash):
		return lose("its token hash is not a SHA-256 in hex")
	}
	a := domain.Agent{ID: row.ID, OwnerID: row.OwnerID, Name: row.Name, Type: row.Type, TokenHash: row.TokenHash,
		Status: domain.StatusActive, ExpiresAt: row.ExpiresAt,
		CreatedAt: row.CreatedAt.Truncate(time.Millisecond), UpdatedAt: row.UpdatedAt.Truncate(time.Millisecond)}
	a.Metadata = map[string]any{}
	if row.Metadata != "" && row.Metadata != "null" {
		if err := json.Unmarshal([]byte(row.Metadata), &a.Metadata); err != nil || a.Metadata == nil {
			return lose("its metadata is not a JSON object")
		}
	}
	if row.TenantID != "" {
		a.Metadata["kavachosTenantId"] = row.TenantID
		im.f.add(Finding{Kind: "tenant_in_metadata", AgentID: row.ID, Detail: "Kavach has no tenants: the tenant ID is kept in metadata.kavachosTenantId"})
	}
	switch row.Status {
	case "active":
	case "revoked":
		a.Status = domain.StatusRevoked
		at := a.UpdatedAt
		a.RevokedAt = &at
	case "expired":
		// Kavach derives expiry from expiresAt: KavachOS marked the agent
		// when its token was used after it, so it is at latest then.
		if a.ExpiresAt == nil || a.ExpiresAt.After(a.UpdatedAt) {
			at := a.UpdatedAt
			a.ExpiresAt = &at
			im.f.add(Finding{Kind: "expired_status", AgentID: row.ID, Detail: "marked expired in KavachOS: expiresAt set to when it was marked"})
		}
	default:
		return lose(fmt.Sprintf("unknown status %q", row.Status))
	}
	if a.ExpiresAt != nil {
		t := a.ExpiresAt.Truncate(time.Millisecond)
		a.ExpiresAt = &t
	}
	a.Permissions = im.t.permissions(row.Permissions, func(kind string, pos int, resource, detail string) {
		im.f.add(Finding{Kind: kind, AgentID: row.ID, Position: pos, Resource: resource, Detail: detail})
	})
	return a, true
}

func sha256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// delegations imports the delegations depth by depth, so that each finds
// the grants its delegator received already translated.
func (im *importer) delegations(ctx context.Context) error {
	deepest, err := im.src.maxDelegationDepth(ctx)
	if err != nil {
		return err
	}
	if err := im.phase(ctx, "delegations", "kavach_delegation_chains", ""); err != nil {
		return err
	}
	defer im.opts.Progress.Done()
	for depth := 1; depth <= deepest; depth++ {
		read := func(after string, limit int) ([]delegationRow, error) {
			return im.src.delegations(ctx, depth, after, limit)
		}
		cur := &keyset[delegationRow]{id: func(d delegationRow) string { return d.ID }, read: read}
		err := drain(cur, im.opts.BatchSize, func(rows []delegationRow) error {
			batch := make([]domain.Delegation, 0, len(rows))
			var kept []*held
			for _, row := range rows {
				d, h, err := im.delegation(ctx, row)
				if err != nil {
					return err
				}
				if h == nil {
					im.r.Delegs.NotImported++
					continue
				}
				batch = append(batch, d)
				kept = append(kept, h)
			}
			res, err := im.st.ImportDelegations(ctx, batch, im.opts.DryRun)
			if err != nil {
				return err
			}
			im.r.Delegs.add(res, len(rows))
			for i, d := range batch {
				im.held[d.ToAgent] = append(im.held[d.ToAgent], kept[i])
			}
			im.opts.Progress.Add(int64(len(rows)))
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// delegation translates one KavachOS delegation. KavachOS stored its
// permissions without constraints and applied none to delegated calls;
// Kavach binds each grant to the delegator's permission that covers it
// (that permission's constraints apply, live). A nil held: not imported.
func (im *importer) delegation(ctx context.Context, row delegationRow) (domain.Delegation, *held, error) {
	lose := func(why string) (domain.Delegation, *held, error) {
		im.f.add(Finding{Kind: "delegation_not_imported", SourceID: row.ID, AgentID: row.To, Detail: why})
		return domain.Delegation{}, nil, nil
	}
	if im.lost[row.From] || im.lost[row.To] {
		return lose("its delegator or receiver was not imported")
	}
	if !im.mine.has(row.From) || !im.mine.has(row.To) {
		im.f.add(Finding{Kind: "foreign_agent", SourceID: row.ID, AgentID: row.To,
			Detail: fmt.Sprintf("delegation from %s to %s: an agent it names is not one this import brought over: not imported", row.From, row.To)})
		return domain.Delegation{}, nil, nil
	}
	var src []struct {
		Resource string   `json:"resource"`
		Actions  []string `json:"actions"`
	}
	if err := json.Unmarshal([]byte(row.Permissions), &src); err != nil {
		return lose("its permissions are not a list of {resource, actions}")
	}
	own, err := im.ownPermissions(ctx, row.From)
	if err != nil {
		return domain.Delegation{}, nil, err
	}
	now := im.opts.Now()
	d := domain.Delegation{ID: store.ImportedID("dlg_", row.CreatedAt, row.ID), FromAgent: row.From, ToAgent: row.To,
		Status: domain.StatusActive, ExpiresAt: row.ExpiresAt.Truncate(time.Millisecond), CreatedAt: row.CreatedAt.Truncate(time.Millisecond),
		Depth: 1, MaxDepth: row.MaxDepth}
	if row.Status != "active" {
		// KavachOS counts only active delegations.
		d.Status = domain.StatusRevoked
		at := now.UTC().Truncate(time.Millisecond)
		d.RevokedAt = &at
	}
	report := func(kind string, pos int, resource, detail string) {
		im.f.add(Finding{Kind: kind, SourceID: row.ID, AgentID: row.To, Position: pos, Resource: resource, Detail: detail})
	}
	for i, sp := range src {
		p := &permission{pos: i + 1, resource: sp.Resource, actions: sp.Actions}
		if !im.t.pattern(p, report) || !im.t.checkActions(p, report) {
			continue
		}
		g, via, err := im.cover(ctx, p, own, row.From)
		if err != nil {
			return domain.Delegation{}, nil, err
		}
		switch {
		case g == nil:
			report("delegation_grant_dropped", p.pos, p.resource, fmt.Sprintf("no permission agent %s holds in Kavach covers it: not imported", row.From))
			continue
		case via != nil && via.ended:
			report("delegation_chain_ended", p.pos, p.resource, fmt.Sprintf("agent %s received it through a delegation that is revoked or expired, which ends this one in Kavach", row.From))
		case via == nil && !coveringConstraints(own, g.CoveredBy).IsZero(), len(g.Inherited) > 0:
			report("delegation_constraints", p.pos, p.resource, "KavachOS applied no constraint to delegated calls; Kavach applies those of the delegator's permission it was cut from")
		}
		if via != nil {
			d.Depth = max(d.Depth, via.depth+1)
			d.MaxDepth = min(d.MaxDepth, via.maxDepth)
		}
		d.Permissions = append(d.Permissions, *g)
	}
	if len(d.Permissions) == 0 {
		return lose("none of its permissions could be imported")
	}
	if d.MaxDepth < d.Depth {
		im.f.add(Finding{Kind: "delegation_depth_raised", SourceID: row.ID, AgentID: row.To,
			Detail: fmt.Sprintf("maxDepth raised from %d to its depth, %d", d.MaxDepth, d.Depth)})
		d.MaxDepth = d.Depth
	}
	im.r.IDs[row.ID] = d.ID
	h := &held{id: d.ID, depth: d.Depth, maxDepth: d.MaxDepth, grants: d.Permissions,
		ended: d.Status != domain.StatusActive || !now.Before(d.ExpiresAt)}
	return d, h, nil
}

// cover finds what the delegator holds that covers p, as the delegation
// policy would: its own permissions first, then the grants it received.
// via is the delegation of the grant used (nil: an own permission).
func (im *importer) cover(ctx context.Context, p *permission, own []domain.Permission, from string) (*domain.Grant, *held, error) {
	for _, o := range own {
		ok, err := im.covers(ctx, o.Resource, o.Actions, p)
		if err != nil || ok {
			return &domain.Grant{Resource: p.resource, Actions: p.actions, Chain: []domain.Link{},
				CoveredBy: engine.PermissionKey(o.Resource, o.Actions)}, nil, err
		}
	}
	for _, h := range im.held[from] {
		for i, hg := range h.grants {
			ok, err := im.covers(ctx, hg.Resource, hg.Actions, p)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				continue
			}
			key := engine.PermissionKey(hg.Resource, hg.Actions)
			g := &domain.Grant{Resource: p.resource, Actions: p.actions, CoveredBy: key,
				Chain: append(slices.Clone(hg.Chain), domain.Link{DelegationID: h.id, Index: i}), Inherited: slices.Clone(hg.Inherited)}
			if !hg.Constraints.IsZero() {
				g.Inherited = append(g.Inherited, domain.Inherited{Key: key, Constraints: hg.Constraints})
			}
			return g, h, nil
		}
	}
	return nil, nil, nil
}

// covers: the policy's resources.covers and actions_cover.
func (im *importer) covers(ctx context.Context, resource string, actions []string, p *permission) (bool, error) {
	if !slices.Contains(actions, "*") && (slices.Contains(p.actions, "*") ||
		slices.ContainsFunc(p.actions, func(a string) bool { return !slices.Contains(actions, a) })) {
		return false, nil
	}
	return im.t.patterns.Covers(ctx, resource, p.resource)
}

func coveringConstraints(own []domain.Permission, key string) domain.Constraints {
	for _, o := range own {
		if engine.PermissionKey(o.Resource, o.Actions) == key {
			return o.Constraints
		}
	}
	return domain.Constraints{}
}

// ownPermissions returns a delegator's permissions as imported (their
// findings were reported with the agent).
func (im *importer) ownPermissions(ctx context.Context, agentID string) ([]domain.Permission, error) {
	if perms, ok := im.own[agentID]; ok {
		return perms, nil
	}
	var rows []permRow
	if err := im.src.permissions(ctx, []any{agentID}, func(_ string, p permRow) { rows = append(rows, p) }); err != nil {
		return nil, err
	}
	perms := im.t.permissions(rows, func(string, int, string, string) {})
	if len(im.own) >= 10_000 {
		clear(im.own)
	}
	im.own[agentID] = perms
	return perms, nil
}

func (im *importer) approvals(ctx context.Context) error {
	if err := im.phase(ctx, "approvals", "kavach_approval_requests", "WHERE status = 'pending'"); err != nil {
		return err
	}
	defer im.opts.Progress.Done()
	read := func(after string, limit int) ([]approvalRow, error) { return im.src.approvals(ctx, after, limit) }
	cur := &keyset[approvalRow]{id: func(a approvalRow) string { return a.ID }, read: read}
	return drain(cur, im.opts.BatchSize, func(rows []approvalRow) error {
		batch := make([]domain.Approval, 0, len(rows))
		for _, row := range rows {
			lose := func(why string) {
				im.f.add(Finding{Kind: "approval_not_imported", SourceID: row.ID, AgentID: row.AgentID, Detail: why})
				im.r.Approvals.NotImported++
			}
			switch {
			case im.lost[row.AgentID]:
				lose("its agent was not imported")
				continue
			case !im.mine.has(row.AgentID):
				im.f.add(Finding{Kind: "foreign_agent", SourceID: row.ID, AgentID: row.AgentID,
					Detail: "approval request: its agent is not one this import brought over: not imported"})
				im.r.Approvals.NotImported++
				continue
			case core.ValidateResource(row.Resource) != nil || core.ValidateRequestAction(row.Action) != nil:
				lose("Kavach would not accept its action or resource in a request")
				continue
			}
			a := domain.Approval{ID: store.ImportedID("apr_", row.CreatedAt, row.ID), AgentID: row.AgentID, OwnerID: row.UserID,
				Action: row.Action, Resource: row.Resource, Status: domain.ApprovalPending,
				ExpiresAt: row.ExpiresAt.Truncate(time.Millisecond), CreatedAt: row.CreatedAt.Truncate(time.Millisecond)}
			if row.Arguments != "" && row.Arguments != "null" {
				a.Arguments = json.RawMessage(row.Arguments)
			}
			im.r.IDs[row.ID] = a.ID
			batch = append(batch, a)
		}
		res, err := im.st.ImportApprovals(ctx, batch, im.opts.DryRun)
		if err != nil {
			return err
		}
		im.r.Approvals.add(res, len(rows))
		im.opts.Progress.Add(int64(len(rows)))
		return nil
	})
}

func (im *importer) audit(ctx context.Context) error {
	if err := im.phase(ctx, "audit rows", "kavach_audit_logs", ""); err != nil {
		return err
	}
	defer im.opts.Progress.Done()
	cur, err := im.src.auditCursor(ctx)
	if err != nil {
		return err
	}
	return drain(cur, auditPerAgent*im.opts.BatchSize, func(rows []auditRow) error {
		batch := make([]domain.AuditEntry, 0, len(rows))
		for _, row := range rows {
			if !im.mine.has(row.AgentID) {
				im.f.add(Finding{Kind: "foreign_agent", SourceID: row.ID, AgentID: row.AgentID,
					Detail: "audit row: its agent is not one this import brought over: not imported"})
				im.r.Audit.NotImported++
				continue
			}
			batch = append(batch, auditEntry(row))
		}
		res, err := im.st.ImportAudit(ctx, batch, im.opts.DryRun)
		if err != nil {
			return err
		}
		im.r.Audit.add(res, len(rows))
		im.opts.Progress.Add(int64(len(rows)))
		return nil
	})
}

// auditPerAgent is how many more audit rows than agents a batch holds:
// an audit row is smaller to write than an agent with its permissions.
const auditPerAgent = 5

// auditEntry is a KavachOS audit row as a Kavach decision row, marked as
// imported: the import's actor, and the row's KavachOS ID, result and
// token cost under changes.imported.
func auditEntry(row auditRow) domain.AuditEntry {
	e := domain.AuditEntry{ID: store.ImportedID("aud_", row.Timestamp, row.ID), Kind: domain.KindDecision,
		AgentID: row.AgentID, OwnerID: row.UserID, Action: row.Action, Resource: row.Resource,
		Result: domain.ResultDenied, Code: "denied", Reason: row.Reason, IP: row.IP, UserAgent: row.UserAgent,
		DurationUS: row.DurationMS * 1000, Timestamp: row.Timestamp, Actor: actor()}
	switch row.Result {
	case "allowed":
		e.Result, e.Code = domain.ResultAllowed, "allowed"
	case "rate_limited":
		e.Code = "rate_limited"
	}
	if e.Reason == "" {
		e.Reason = "decided by KavachOS"
	}
	if row.Parameters != "" && row.Parameters != "null" && row.Parameters != "{}" {
		e.Arguments = json.RawMessage(row.Parameters)
	}
	imported := map[string]any{"from": "kavachos", "id": row.ID, "result": row.Result}
	if row.TokensCost.Valid {
		imported["tokensCost"] = row.TokensCost.Int64
	}
	e.Changes, _ = json.Marshal(map[string]any{"imported": imported}) // strings and integers: cannot fail
	return e
}
