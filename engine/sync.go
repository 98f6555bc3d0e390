package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/domain"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Source is where a full load reads from.
type Source interface {
	EachAgent(ctx context.Context, fn func(domain.Agent) error) error
	EachDelegation(ctx context.Context, fn func(domain.Delegation) error) error
	EachApproval(ctx context.Context, keep time.Duration, fn func(domain.Approval) error) error
}

// ApprovalRetention is how long after expiry approvals stay in OPA, so a late
// caller hears "expired" rather than "does not exist".
const ApprovalRetention = 24 * time.Hour

// Counts reports what a full load put into OPA.
type Counts struct {
	Agents, Delegations, Approvals int
	// OnDemand: nothing was loaded; documents are read when first needed.
	OnDemand bool
}

// Load replaces all data with the source's, in one transaction. Over
// CachedData it reads nothing: it forgets what memory holds, and each
// document is read from the database when a decision first needs it.
func (e *Engine) Load(ctx context.Context, src Source) (Counts, error) {
	if c, ok := e.data.(*cachedData); ok {
		c.reset()
		e.revision.Add(1)
		return Counts{OnDemand: true}, nil
	}
	docs, counts, err := Documents(ctx, src)
	if err != nil {
		return Counts{}, err
	}
	err = storage.Txn(ctx, e.data, storage.WriteParams, func(txn storage.Transaction) error {
		for _, w := range []storage.Path{agentsPath, tokensPath, delegationsPath, approvalsPath} {
			key := w[len(w)-1]
			if err := e.data.Write(ctx, txn, storage.ReplaceOp, w, docs.Get(ast.StringTerm(key)).Value); err != nil {
				return err
			}
		}
		return nil
	})
	e.revision.Add(1)
	if err != nil {
		return Counts{}, fmt.Errorf("load into OPA: %w", err)
	}
	return counts, nil
}

// Documents builds data.kavach, everything the policies read, from the
// source: {agents, tokens, delegations, approvals}. Documents are built as
// OPA AST values directly: no intermediate maps and no second conversion,
// which is most of the cost of loading 100,000 agents.
func Documents(ctx context.Context, src Source) (ast.Object, Counts, error) {
	b := newDocBuilder()
	agents, tokens := ast.NewObject(), ast.NewObject()
	delegations, approvals := ast.NewObject(), ast.NewObject()
	incoming := map[string][]*ast.Term{}
	err := src.EachDelegation(ctx, func(d domain.Delegation) error {
		delegations.Insert(ast.StringTerm(d.ID), ast.NewTerm(b.delegation(d)))
		incoming[d.ToAgent] = append(incoming[d.ToAgent], ast.StringTerm(d.ID))
		return nil
	})
	if err != nil {
		return nil, Counts{}, fmt.Errorf("load delegations: %w", err)
	}
	err = src.EachAgent(ctx, func(a domain.Agent) error {
		id := ast.StringTerm(a.ID)
		agents.Insert(id, ast.NewTerm(b.agent(a, incoming[a.ID])))
		tokens.Insert(ast.StringTerm(a.TokenHash), id)
		return nil
	})
	if err != nil {
		return nil, Counts{}, fmt.Errorf("load agents: %w", err)
	}
	err = src.EachApproval(ctx, ApprovalRetention, func(a domain.Approval) error {
		approvals.Insert(ast.StringTerm(a.ID), ast.NewTerm(b.approval(a)))
		return nil
	})
	if err != nil {
		return nil, Counts{}, fmt.Errorf("load approvals: %w", err)
	}
	docs := ast.NewObject(
		ast.Item(ast.StringTerm("agents"), ast.NewTerm(agents)),
		ast.Item(ast.StringTerm("tokens"), ast.NewTerm(tokens)),
		ast.Item(ast.StringTerm("delegations"), ast.NewTerm(delegations)),
		ast.Item(ast.StringTerm("approvals"), ast.NewTerm(approvals)),
	)
	return docs, Counts{Agents: agents.Len(), Delegations: delegations.Len(), Approvals: approvals.Len()}, nil
}

// Changes are documents to write to OPA together.
type Changes struct {
	Agents      []domain.Agent
	Delegations []domain.Delegation
	Approvals   []domain.Approval
}

// Apply writes the changes in one transaction: a decision sees all of a
// write or none of it.
func (e *Engine) Apply(ctx context.Context, c Changes) error {
	b := newDocBuilder()
	build := func(fn func(*docBuilder) ast.Value) ast.Value { return fn(b) }
	if cached, ok := e.data.(*cachedData); ok {
		// Written documents share with those read through.
		build = cached.build
	}
	err := storage.Txn(ctx, e.data, storage.WriteParams, func(txn storage.Transaction) error {
		for _, a := range c.Agents {
			agentPath := join(agentsPath, a.ID)
			old, err := e.data.Read(ctx, txn, join(agentPath, "tokenHash"))
			switch {
			case err == nil:
				if h := stringOf(old); h != "" && h != a.TokenHash {
					if err := e.data.Write(ctx, txn, storage.RemoveOp, join(tokensPath, h), nil); err != nil && !storage.IsNotFound(err) {
						return err
					}
				}
			case !storage.IsNotFound(err):
				return err
			}
			in := make([]*ast.Term, len(a.Incoming))
			for i, id := range a.Incoming {
				in[i] = ast.StringTerm(id)
			}
			if err := e.data.Write(ctx, txn, storage.AddOp, agentPath, build(func(b *docBuilder) ast.Value { return b.agent(a, in) })); err != nil {
				return err
			}
			if err := e.data.Write(ctx, txn, storage.AddOp, join(tokensPath, a.TokenHash), ast.String(a.ID)); err != nil {
				return err
			}
		}
		for _, d := range c.Delegations {
			if err := e.data.Write(ctx, txn, storage.AddOp, join(delegationsPath, d.ID), build(func(b *docBuilder) ast.Value { return b.delegation(d) })); err != nil {
				return err
			}
		}
		for _, a := range c.Approvals {
			if err := e.data.Write(ctx, txn, storage.AddOp, join(approvalsPath, a.ID), build(func(b *docBuilder) ast.Value { return b.approval(a) })); err != nil {
				return err
			}
		}
		return nil
	})
	// After the commit: a decision that read the old data and caches its
	// result does so under the old revision, which no lookup uses again.
	e.revision.Add(1)
	if err != nil {
		return fmt.Errorf("sync into OPA: %w", err)
	}
	return nil
}

// join returns a new path; it never aliases the base's backing array.
func join(base storage.Path, elems ...string) storage.Path {
	p := make(storage.Path, 0, len(base)+len(elems))
	return append(append(p, base...), elems...)
}

func stringOf(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case ast.String:
		return string(s)
	}
	return ""
}

// docBuilder makes the documents the policy reads. It shares one term per
// distinct short string (statuses, owners, resource patterns, actions)
// across documents: with 100,000 agents most of them repeat. Scalar terms
// are never mutated, so sharing them is safe.
type docBuilder struct {
	strings map[string]*ast.Term
	lists   map[string]*ast.Term
	trusts  map[trustKey]*ast.Term
	sets    map[string]permissionSet
	uses    map[string]*ast.Term
	// bytes estimates what the shared values hold, for a builder that
	// lives across writes (CachedData) to know when to start afresh.
	bytes int
}

// permissionSet is an agent's own permissions as the policy reads them: the
// list and its action index. Agents made alike (from one template, or
// agents.defaultPermissions) hold equal sets, which share one.
type permissionSet struct{ list, byAction, anyAction *ast.Term }

type trustKey struct {
	level string
	score int
}

func newDocBuilder() *docBuilder {
	return &docBuilder{strings: map[string]*ast.Term{}, lists: map[string]*ast.Term{}, trusts: map[trustKey]*ast.Term{},
		sets: map[string]permissionSet{}, uses: map[string]*ast.Term{}}
}

// size is how many shared values the builder remembers.
func (b *docBuilder) size() int {
	return len(b.strings) + len(b.lists) + len(b.trusts) + len(b.sets) + len(b.uses)
}

// maxSharedSetKey bounds the permission sets shared: those made from a
// template are short; a long one is likely its agent's own, and keeping it
// to share would only keep it alive after its agent's document is gone.
const maxSharedSetKey = 2048

// ownPermissions is the permission set of perms, shared with every other
// agent holding the same permissions in the same order.
func (b *docBuilder) ownPermissions(perms []domain.Permission) permissionSet {
	var k strings.Builder
	field := func(s string) { // length-prefixed: no two sets share a key
		k.WriteString(strconv.Itoa(len(s)))
		k.WriteByte(':')
		k.WriteString(s)
	}
	for _, p := range perms {
		field(p.Resource)
		k.WriteString(strconv.Itoa(len(p.Actions)))
		for _, a := range p.Actions {
			field(a)
		}
		c := []byte("{}")
		if !p.Constraints.IsZero() {
			var err error
			if c, err = json.Marshal(p.Constraints.Map()); err != nil {
				// Strings, booleans and integers only: cannot happen; never
				// share what cannot be told apart.
				return b.buildPermissions(perms)
			}
		}
		field(string(c))
		if k.Len() > maxSharedSetKey {
			// Built apart, so that the builder keeps nothing of it.
			return newDocBuilder().buildPermissions(perms)
		}
	}
	if s, ok := b.sets[k.String()]; ok {
		return s
	}
	s := b.buildPermissions(perms)
	b.sets[k.String()] = s
	b.bytes += 2*k.Len() + 1024*len(perms)
	return s
}

func (b *docBuilder) buildPermissions(perms []domain.Permission) permissionSet {
	list := make([]*ast.Term, len(perms))
	for i, p := range perms {
		key := PermissionKey(p.Resource, p.Actions)
		doc := b.permission(key, p.Resource, p.Actions, p.Constraints)
		doc.Insert(b.str("use"), b.use(key, p.Resource, p.Constraints.MaxCallsPerHour))
		list[i] = ast.NewTerm(doc)
	}
	byAction, anyAction := b.actionIndex(perms)
	return permissionSet{ast.ArrayTerm(list...), byAction, anyAction}
}

func (b *docBuilder) str(s string) *ast.Term {
	if t, ok := b.strings[s]; ok {
		return t
	}
	t := ast.StringTerm(s)
	b.strings[s] = t
	b.bytes += 2*len(s) + 64
	return t
}

func nanoTerm(t time.Time) *ast.Term {
	return ast.NewTerm(ast.Number(strconv.FormatInt(t.UnixNano(), 10)))
}

// agent is data.kavach.agents[id]. Its status is revoked, suspended or
// active: an expired agent is an active one whose expiresAt has passed,
// which the policy sees for itself.
func (b *docBuilder) agent(a domain.Agent, incoming []*ast.Term) ast.Value {
	status := domain.StatusActive
	switch a.Status {
	case domain.StatusRevoked, domain.StatusSuspended:
		status = a.Status
	}
	expires := ast.NullTerm()
	if a.ExpiresAt != nil {
		expires = nanoTerm(*a.ExpiresAt)
	}
	set := b.ownPermissions(a.Permissions)
	doc := ast.NewObject(
		ast.Item(b.str("ownerId"), b.str(a.OwnerID)),
		ast.Item(b.str("status"), b.str(status)),
		ast.Item(b.str("expiresAt"), expires),
		ast.Item(b.str("tokenHash"), ast.StringTerm(a.TokenHash)),
		ast.Item(b.str("permissions"), set.list),
		ast.Item(b.str("byAction"), set.byAction),
		ast.Item(b.str("anyAction"), set.anyAction),
		ast.Item(b.str("trust"), b.trust(a.Trust)),
	)
	if len(incoming) > 0 {
		doc.Insert(b.str("incoming"), ast.ArrayTerm(incoming...))
	}
	return doc
}

// actionIndex lists, for each action named by a permission, the positions
// of the permissions that apply to it (those naming it or "*"), in stored
// order; anyAction lists those naming "*", for every other action. A
// decision then visits one or two permissions, not all of them. Lists
// repeat across agents and are never mutated, so they are shared.
func (b *docBuilder) actionIndex(perms []domain.Permission) (byAction, anyAction *ast.Term) {
	var wildcard []int
	for i, p := range perms {
		if slices.Contains(p.Actions, "*") {
			wildcard = append(wildcard, i)
		}
	}
	positions := map[string][]int{}
	for i, p := range perms {
		for _, a := range p.Actions {
			if a == "*" || slices.Contains(positions[a], i) {
				continue
			}
			if _, seen := positions[a]; !seen {
				positions[a] = nil
			}
			positions[a] = append(positions[a], i)
		}
	}
	index := ast.NewObject()
	for a, is := range positions {
		is = append(is, wildcard...)
		slices.Sort(is)
		index.Insert(b.str(a), b.ints(slices.Compact(is)))
	}
	return ast.NewTerm(index), b.ints(wildcard)
}

// trust is the agent's trust as the policy reads it: {"level", "score"}.
// An agent with no level yet (one built by hand) has the initial score's
// level under the default thresholds. The documents repeat across agents
// and are never mutated, so they are shared.
func (b *docBuilder) trust(t domain.Trust) *ast.Term {
	k := trustKey{t.Level, t.Score}
	if k.level == "" {
		k.score = domain.InitialTrustScore
		k.level = domain.DefaultTrustThresholds.Level(k.score)
	}
	if term, ok := b.trusts[k]; ok {
		return term
	}
	term := ast.ObjectTerm(
		ast.Item(b.str("level"), b.str(k.level)),
		ast.Item(b.str("score"), ast.InternedTerm(k.score)),
	)
	b.trusts[k] = term
	return term
}

func (b *docBuilder) ints(is []int) *ast.Term {
	var k strings.Builder
	for _, i := range is {
		k.WriteString(strconv.Itoa(i))
		k.WriteByte(',')
	}
	if t, ok := b.lists[k.String()]; ok {
		return t
	}
	terms := make([]*ast.Term, len(is))
	for j, i := range is {
		terms[j] = ast.InternedTerm(i)
	}
	t := ast.ArrayTerm(terms...)
	b.lists[k.String()] = t
	return t
}

func (b *docBuilder) permission(key, resource string, actions []string, constraints domain.Constraints) ast.Object {
	acts := make([]*ast.Term, len(actions))
	for i, a := range actions {
		acts[i] = b.str(a)
	}
	doc := ast.NewObject(
		ast.Item(b.str("key"), ast.StringTerm(key)),
		ast.Item(b.str("resource"), b.str(resource)),
		ast.Item(b.str("glob"), b.str(ResourceGlob(resource))),
		ast.Item(b.str("actions"), ast.ArrayTerm(acts...)),
	)
	if !constraints.IsZero() {
		doc.Insert(b.str("constraints"), constraintsTerm(constraints))
	}
	return doc
}

// use is what the common allows by an own permission report of it (the
// decision's permission field), ready made, so that they do not build it:
// {"key", "source": "own", "resource"}, and its rate limit
// ("rateLimits": [{"key", "max"}]) if it has one. Own permissions repeat
// across agents and the documents are never mutated, so they are shared.
func (b *docBuilder) use(key, resource string, maxCalls int64) *ast.Term {
	k := key + "\x00" + resource + "\x00" + strconv.FormatInt(maxCalls, 10)
	if t, ok := b.uses[k]; ok {
		return t
	}
	items := [][2]*ast.Term{
		ast.Item(b.str("key"), b.str(key)),
		ast.Item(b.str("source"), b.str("own")),
		ast.Item(b.str("resource"), b.str(resource)),
	}
	if maxCalls > 0 {
		items = append(items, ast.Item(b.str("rateLimits"), ast.ArrayTerm(ast.ObjectTerm(
			ast.Item(b.str("key"), b.str(key)),
			ast.Item(b.str("max"), ast.InternedTerm(int(maxCalls))),
		))))
	}
	t := ast.ObjectTerm(items...)
	b.uses[k] = t
	b.bytes += len(k) + 512
	return t
}

// PermissionKey identifies a permission by its resource pattern and set of
// actions. Rate-limit counts follow it: not the permission's position, not
// its constraints (tightening a limit keeps the calls already counted), and
// not the delegation that carried it (the same grant delegated twice is one
// quota). Keys are unique within an agent's own permissions.
func PermissionKey(resource string, actions []string) string {
	sorted := slices.Clone(actions)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	h := sha256.New()
	_, _ = io.WriteString(h, resource)
	for _, a := range sorted {
		_, _ = io.WriteString(h, "\x00"+a)
	}
	var sum [sha256.Size]byte
	return "p_" + hex.EncodeToString(h.Sum(sum[:0])[:8])
}

// constraintsTerm prepares constraints for the policy: exact IP addresses
// become /32 or /128 prefixes, so one builtin (net.cidr_contains) checks all.
func constraintsTerm(c domain.Constraints) *ast.Term {
	m := c.Map()
	if c.IPAllowlist != nil {
		prefixes := make([]any, 0, len(c.IPAllowlist))
		for _, s := range c.IPAllowlist {
			if p, err := netip.ParsePrefix(s); err == nil {
				prefixes = append(prefixes, p.Masked().String())
			} else if a, err := netip.ParseAddr(s); err == nil {
				prefixes = append(prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()).String())
			}
		}
		m["ipAllowlist"] = prefixes
	}
	v, err := ast.InterfaceToValue(m)
	if err != nil {
		// Strings, booleans and integers only: cannot happen.
		return ast.NullTerm()
	}
	return ast.NewTerm(v)
}

// delegation is data.kavach.delegations[id].
func (b *docBuilder) delegation(d domain.Delegation) ast.Value {
	status := domain.StatusActive
	if d.Status == domain.StatusRevoked {
		status = domain.StatusRevoked
	}
	perms := make([]*ast.Term, len(d.Permissions))
	for i, g := range d.Permissions {
		doc := b.permission(PermissionKey(g.Resource, g.Actions), g.Resource, g.Actions, g.Constraints)
		inherited := make([]*ast.Term, len(g.Inherited))
		for j, in := range g.Inherited {
			inherited[j] = ast.ObjectTerm(ast.Item(b.str("key"), ast.StringTerm(in.Key)),
				ast.Item(b.str("constraints"), constraintsTerm(in.Constraints)))
		}
		doc.Insert(b.str("coveredBy"), ast.StringTerm(g.CoveredBy))
		doc.Insert(ast.StringTerm("inherited"), ast.ArrayTerm(inherited...))
		chain := make([]*ast.Term, len(g.Chain))
		for j, l := range g.Chain {
			chain[j] = ast.ArrayTerm(ast.StringTerm(l.DelegationID), ast.IntNumberTerm(l.Index))
		}
		doc.Insert(ast.StringTerm("chain"), ast.ArrayTerm(chain...))
		// The whole path, root first, ending with this delegation's own
		// link: what a decision checks link by link, without building it.
		doc.Insert(ast.StringTerm("links"), ast.ArrayTerm(slices.Concat(chain, []*ast.Term{ast.ArrayTerm(ast.StringTerm(d.ID), ast.InternedTerm(i))})...))
		perms[i] = ast.NewTerm(doc)
	}
	granted := make([]domain.Permission, len(d.Permissions))
	for i, g := range d.Permissions {
		granted[i] = domain.Permission{Resource: g.Resource, Actions: g.Actions}
	}
	byAction, anyAction := b.actionIndex(granted)
	return ast.NewObject(
		ast.Item(ast.StringTerm("id"), ast.StringTerm(d.ID)),
		ast.Item(ast.StringTerm("fromAgent"), ast.StringTerm(d.FromAgent)),
		ast.Item(ast.StringTerm("toAgent"), ast.StringTerm(d.ToAgent)),
		ast.Item(b.str("status"), b.str(status)),
		ast.Item(b.str("expiresAt"), nanoTerm(d.ExpiresAt)),
		ast.Item(ast.StringTerm("depth"), ast.IntNumberTerm(d.Depth)),
		ast.Item(ast.StringTerm("maxDepth"), ast.IntNumberTerm(d.MaxDepth)),
		ast.Item(b.str("permissions"), ast.ArrayTerm(perms...)),
		ast.Item(b.str("byAction"), byAction),
		ast.Item(b.str("anyAction"), anyAction),
	)
}

// approval is data.kavach.approvals[id].
func (b *docBuilder) approval(a domain.Approval) ast.Value {
	return ast.NewObject(
		ast.Item(ast.StringTerm("agentId"), ast.StringTerm(a.AgentID)),
		ast.Item(ast.StringTerm("action"), b.str(a.Action)),
		ast.Item(b.str("resource"), b.str(a.Resource)),
		ast.Item(b.str("status"), b.str(a.StoredStatus)),
		ast.Item(b.str("expiresAt"), nanoTerm(a.ExpiresAt)),
	)
}

// ResourceGlob turns a permission's resource pattern into a glob for OPA's
// glob.match with ":" as the separator: "?*" is one non-empty segment, a
// trailing "?**" one or more segments, and literal segments are escaped.
// For resources without empty segments it matches exactly what the
// segment-by-segment rule (policies/resources) matches.
func ResourceGlob(pattern string) string {
	if pattern == "*" {
		return "**"
	}
	segs := strings.Split(pattern, ":")
	var b strings.Builder
	for i, seg := range segs {
		if i > 0 {
			b.WriteByte(':')
		}
		switch {
		case seg == "*" && i == len(segs)-1:
			b.WriteString("?**")
		case seg == "*":
			b.WriteString("?*")
		default:
			// Byte by byte: a pattern is matched as bytes, valid UTF-8 or not.
			for i := 0; i < len(seg); i++ {
				if strings.IndexByte(`*?[]{}\!`, seg[i]) >= 0 {
					b.WriteByte('\\')
				}
				b.WriteByte(seg[i])
			}
		}
	}
	return b.String()
}
