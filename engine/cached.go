package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"

	"github.com/kavach-dev/kavach/domain"
)

// Lookup reads one document's worth of policy data from the database, for
// CachedData on a miss. Each method reports found = false, with no error,
// when the entity does not exist.
type Lookup interface {
	// Agent is the agent with its permissions and the IDs of the
	// delegations to it (domain.Agent.Incoming).
	Agent(ctx context.Context, id string) (a domain.Agent, found bool, err error)
	// AgentIDByToken is the ID of the agent whose token hashes to hash.
	AgentIDByToken(ctx context.Context, hash string) (id string, found bool, err error)
	Delegation(ctx context.Context, id string) (d domain.Delegation, found bool, err error)
	Approval(ctx context.Context, id string) (a domain.Approval, found bool, err error)
}

// CacheStats counts what CachedData served from memory and what it read
// from the database.
type CacheStats struct {
	// Entries is how many documents memory holds (agents, tokens,
	// delegations and approvals, known absences included).
	Entries int `json:"entries"`
	// Capacity is how many documents of each kind memory may hold.
	Capacity int    `json:"capacity"`
	Hits     uint64 `json:"hits"`
	Misses   uint64 `json:"misses"`
	// Errors counts database reads that failed (the decision failed too).
	Errors uint64 `json:"errors"`
}

// CachedData is a storage.Store holding the policy data of at most
// capacity agents (and as many token, delegation and approval entries) in
// memory, least recently used first out, and reading the rest through from
// the database on a miss (lookup). It never loads every agent: memory stays
// bounded however many agents exist, and start-up reads nothing.
//
// The rules only look documents up by key (data.kavach.agents[id], …),
// which is all this store serves; reading a whole collection
// (data.kavach.agents with no key) is an error, so an extension that
// enumerates agents fails loudly rather than seeing a partial set.
//
// Writes (the engine's Apply, for this replica's own writes and for the
// change feed's) replace or remove entries; a read through that raced
// with a write to the same key is served but not remembered, so memory
// never keeps a document older than one written after it.
//
// Each document is replaced whole: a decision that runs across a write may
// see one document before the write and another after it, each as it was
// committed. Token entries are checked against the agent's own tokenHash
// on every read, so a rotated-away token never resolves from memory.
func CachedData(lookup Lookup, capacity int) storage.Store {
	if capacity < 1 {
		capacity = 1
	}
	c := &cachedData{lookup: lookup, capacity: capacity, seed: maphash.MakeSeed()}
	c.agents = mustLRU(capacity)
	c.tokens = mustLRU(capacity)
	c.delegations = mustLRU(capacity)
	c.approvals = mustLRU(capacity)
	var err error
	if c.absents, err = lru.New[string, struct{}](capacity); err != nil {
		panic(err) // only for capacity <= 0, ruled out above
	}
	return c
}

func mustLRU(n int) *lru.Cache[string, ast.Value] {
	l, err := lru.New[string, ast.Value](n)
	if err != nil {
		panic(err) // only for n <= 0, which CachedData rules out
	}
	return l
}

// absent marks a key the database does not have. It is never handed to a
// caller: a read of it is storage's not-found.
var absent ast.Value = ast.Null{}

// generations is how many independent write counters keys are spread over:
// a read through is remembered unless a write to a key of the same counter
// happened meanwhile.
const generations = 256

type cachedData struct {
	lookup   Lookup
	capacity int
	seed     maphash.Seed

	agents, tokens, delegations, approvals *lru.Cache[string, ast.Value]
	// absents are the keys the database did not have, by kind and key:
	// apart, so that unknown IDs and tokens (anyone can send them) never
	// push out the documents of agents that exist.
	absents *lru.Cache[string, struct{}]

	// gens counts writes per key group; see remember.
	gens [generations]atomic.Uint64
	// writeMu admits one write transaction at a time, as OPA's stores do.
	writeMu sync.Mutex
	txnID   atomic.Uint64

	hits, misses, errs atomic.Uint64

	// builder builds every document read through, so that documents
	// share what they have in common (strings, equal permission sets);
	// it forgets what it shares past a bound (share).
	builderMu sync.Mutex
	builder   *docBuilder
}

// Bounds of what the builder keeps to share: permission sets shared by
// many agents are few; past this many (or this much), the fleet's sets
// are mostly distinct, and keeping them would hold documents memory has
// let go.
const (
	maxSharedSets   = 4096
	maxSharedValues = 65536
	maxSharedBytes  = 16 << 20
)

// build runs fn with the shared builder.
func (c *cachedData) build(fn func(b *docBuilder) ast.Value) ast.Value {
	c.builderMu.Lock()
	defer c.builderMu.Unlock()
	if b := c.builder; b == nil || len(b.sets) > maxSharedSets || b.size() > maxSharedValues || b.bytes > maxSharedBytes {
		c.builder = newDocBuilder()
	}
	return fn(c.builder)
}

// cachedTxn is a transaction on cachedData. A write transaction stages its
// operations and applies them all on Commit.
type cachedTxn struct {
	id    uint64
	write bool
	ops   []cachedOp
	done  bool
}

type cachedOp struct {
	coll      *lru.Cache[string, ast.Value]
	kind, key string
	val       ast.Value // nil: remove
}

func (t *cachedTxn) ID() uint64 { return t.id }

// DataCache reports the counters of the engine's policy data store when it
// is CachedData; false when it holds every agent.
func (e *Engine) DataCache() (CacheStats, bool) { return stats(e.data) }

func stats(s storage.Store) (CacheStats, bool) {
	c, ok := s.(*cachedData)
	if !ok {
		return CacheStats{}, false
	}
	return CacheStats{
		Entries:  c.agents.Len() + c.tokens.Len() + c.delegations.Len() + c.approvals.Len() + c.absents.Len(),
		Capacity: c.capacity, Hits: c.hits.Load(), Misses: c.misses.Load(), Errors: c.errs.Load(),
	}, true
}

// reset forgets every entry: the next read of each document goes to the
// database (Engine.Load on this store).
func (c *cachedData) reset() {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	for i := range c.gens {
		c.gens[i].Add(1)
	}
	for _, l := range []*lru.Cache[string, ast.Value]{c.agents, c.tokens, c.delegations, c.approvals} {
		l.Purge()
	}
	c.absents.Purge()
}

func (c *cachedData) NewTransaction(_ context.Context, params ...storage.TransactionParams) (storage.Transaction, error) {
	t := &cachedTxn{id: c.txnID.Add(1)}
	for _, p := range params {
		t.write = t.write || p.Write
	}
	if t.write {
		c.writeMu.Lock()
	}
	return t, nil
}

func (c *cachedData) Commit(_ context.Context, txn storage.Transaction) error {
	t, err := c.txn(txn)
	if err != nil {
		return err
	}
	if !t.write {
		t.done = true
		return nil
	}
	for _, op := range t.ops {
		// The counter moves before the entry changes: a read through
		// that began before this write sees it moved and is not
		// remembered.
		c.gen(op.key).Add(1)
		c.absents.Remove(absentKey(op.kind, op.key))
		if op.val == nil {
			op.coll.Remove(op.key)
		} else {
			op.coll.Add(op.key, op.val)
		}
	}
	t.ops, t.done = nil, true
	c.writeMu.Unlock()
	return nil
}

func (c *cachedData) Abort(_ context.Context, txn storage.Transaction) {
	t, err := c.txn(txn)
	if err != nil {
		return
	}
	t.ops, t.done = nil, true
	if t.write {
		c.writeMu.Unlock()
	}
}

func (c *cachedData) txn(txn storage.Transaction) (*cachedTxn, error) {
	t, ok := txn.(*cachedTxn)
	if !ok || t.done {
		return nil, &storage.Error{Code: storage.InvalidTransactionErr, Message: "unknown or finished transaction"}
	}
	return t, nil
}

func (c *cachedData) gen(key string) *atomic.Uint64 {
	return &c.gens[maphash.String(c.seed, key)%generations]
}

// collection names the kind of document a path's second element names.
func (c *cachedData) collection(name string) *lru.Cache[string, ast.Value] {
	switch name {
	case "agents":
		return c.agents
	case "tokens":
		return c.tokens
	case "delegations":
		return c.delegations
	case "approvals":
		return c.approvals
	}
	return nil
}

func notFound(path storage.Path) error {
	return &storage.Error{Code: storage.NotFoundErr, Message: path.String() + ": document missing"}
}

func (c *cachedData) Read(ctx context.Context, txn storage.Transaction, path storage.Path) (any, error) {
	t, err := c.txn(txn)
	if err != nil {
		return nil, err
	}
	if len(path) > 0 && path[0] != "kavach" {
		return nil, notFound(path)
	}
	if len(path) < 3 {
		if len(path) == 2 && c.collection(path[1]) == nil {
			return nil, notFound(path)
		}
		name := strings.ReplaceAll(strings.TrimPrefix(path.String(), "/"), "/", ".")
		return nil, &storage.Error{Code: storage.InternalErr, Message: strings.TrimSuffix("data."+name, ".") +
			" is read by key only (data.kavach.agents[id], …): it cannot be enumerated, the agents live in the database"}
	}
	coll := c.collection(path[1])
	if coll == nil {
		return nil, notFound(path)
	}
	var v ast.Value
	if t.write {
		// Writes look at memory only: the engine reads an agent's cached
		// token hash to drop it on rotation, and the database already
		// holds the new one.
		v, _ = coll.Get(path[2])
	} else if v, err = c.get(ctx, path[1], coll, path[2]); err != nil {
		return nil, err
	}
	if v == nil || v == absent {
		return nil, notFound(path)
	}
	for _, k := range path[3:] {
		if v = child(v, k); v == nil {
			return nil, notFound(path)
		}
	}
	return v, nil
}

// child is v[k] for an object or array v, nil if there is none.
func child(v ast.Value, k string) ast.Value {
	switch x := v.(type) {
	case ast.Object:
		if t := x.Get(ast.StringTerm(k)); t != nil {
			return t.Value
		}
	case *ast.Array:
		if i, err := strconv.Atoi(k); err == nil && i >= 0 && i < x.Len() {
			return x.Elem(i).Value
		}
	}
	return nil
}

// get returns the document under key, from memory or else the database;
// absent when the database has none.
func (c *cachedData) get(ctx context.Context, kind string, coll *lru.Cache[string, ast.Value], key string) (ast.Value, error) {
	if v, ok := coll.Get(key); ok {
		if kind != "tokens" || c.tokenCurrent(ctx, key, v) {
			c.hits.Add(1)
			return v, nil
		}
	} else if _, ok := c.absents.Get(absentKey(kind, key)); ok {
		c.hits.Add(1)
		return absent, nil
	}
	c.misses.Add(1)
	gen := c.gen(key).Load()
	v, err := c.read(ctx, kind, key)
	if err == nil && kind == "tokens" && v != absent && !c.tokenCurrent(ctx, key, v) {
		// The agent found does not hold this exact hash (a database
		// comparing padded strings, or a rotation this replica has not
		// applied yet: the write that applies it adds the token's entry).
		v = absent
	}
	if err != nil {
		c.errs.Add(1)
		return nil, &storage.Error{Code: storage.InternalErr, Message: fmt.Sprintf("read %s %q from the database: %v", kind, key, err)}
	}
	c.remember(coll, kind, key, v, gen)
	return v, nil
}

func absentKey(kind, key string) string { return kind + "\x00" + key }

// remember keeps a document read through (or the key's absence), unless a
// write to a key of the same group happened since the read began (the
// read may predate it).
func (c *cachedData) remember(coll *lru.Cache[string, ast.Value], kind, key string, v ast.Value, gen uint64) {
	g := c.gen(key)
	if g.Load() != gen {
		return
	}
	if v == absent {
		k := absentKey(kind, key)
		c.absents.Add(k, struct{}{})
		if g.Load() != gen {
			c.absents.Remove(k) // a write landed meanwhile: it may have created it
		}
		return
	}
	coll.Add(key, v)
	if g.Load() != gen {
		// A write landed while adding: it may have been overwritten by
		// this older value, so drop it; the next read goes to the database.
		coll.Remove(key)
	}
}

// tokenCurrent reports whether the agent a cached token entry names still
// holds that token (a rotation written elsewhere replaces the agent's
// document, and the old token's entry must not outlive it).
func (c *cachedData) tokenCurrent(ctx context.Context, hash string, id ast.Value) bool {
	s, ok := id.(ast.String)
	if !ok {
		return false
	}
	doc, err := c.get(ctx, "agents", c.agents, string(s))
	if err != nil || doc == absent {
		return false
	}
	h, ok := child(doc, "tokenHash").(ast.String)
	return ok && string(h) == hash
}

// read builds one document from the database, as Documents would.
func (c *cachedData) read(ctx context.Context, kind, key string) (ast.Value, error) {
	switch kind {
	case "agents":
		a, ok, err := c.lookup.Agent(ctx, key)
		if err != nil || !ok || a.ID != key {
			// Exactly the key asked for, or nothing: a document kept under
			// another key than its own would never be replaced by writes.
			return absent, err
		}
		in := make([]*ast.Term, len(a.Incoming))
		for i, id := range a.Incoming {
			in[i] = ast.StringTerm(id)
		}
		return c.build(func(b *docBuilder) ast.Value { return b.agent(a, in) }), nil
	case "tokens":
		id, ok, err := c.lookup.AgentIDByToken(ctx, key)
		if err != nil || !ok {
			return absent, err
		}
		return ast.String(id), nil
	case "delegations":
		d, ok, err := c.lookup.Delegation(ctx, key)
		if err != nil || !ok || d.ID != key {
			return absent, err
		}
		return c.build(func(b *docBuilder) ast.Value { return b.delegation(d) }), nil
	case "approvals":
		a, ok, err := c.lookup.Approval(ctx, key)
		if err != nil || !ok || a.ID != key {
			return absent, err
		}
		return c.build(func(b *docBuilder) ast.Value { return b.approval(a) }), nil
	}
	return absent, nil
}

func (c *cachedData) Write(_ context.Context, txn storage.Transaction, op storage.PatchOp, path storage.Path, value any) error {
	t, err := c.txn(txn)
	if err != nil {
		return err
	}
	if !t.write {
		return &storage.Error{Code: storage.InvalidTransactionErr, Message: "write in a read transaction"}
	}
	if len(path) != 3 || path[0] != "kavach" || c.collection(path[1]) == nil {
		return &storage.Error{Code: storage.InvalidPatchErr, Message: path.String() + ": only whole documents under data.kavach.{agents,tokens,delegations,approvals} are written"}
	}
	o := cachedOp{coll: c.collection(path[1]), kind: path[1], key: path[2]}
	switch op {
	case storage.AddOp, storage.ReplaceOp:
		v, ok := value.(ast.Value)
		if !ok {
			var err error
			if v, err = ast.InterfaceToValue(value); err != nil {
				return &storage.Error{Code: storage.InvalidPatchErr, Message: err.Error()}
			}
		}
		o.val = v
	case storage.RemoveOp:
	default:
		return &storage.Error{Code: storage.InvalidPatchErr, Message: "unknown patch operation"}
	}
	t.ops = append(t.ops, o)
	return nil
}

// Truncate (OPA replacing every document, as a bundle activation does) is
// refused: the documents live in the database, not in this store.
func (c *cachedData) Truncate(_ context.Context, _ storage.Transaction, _ storage.TransactionParams, _ storage.Iterator) error {
	return errors.New("the bounded policy data store cannot be truncated: it reads agents from the database")
}

// Policies are compiled by the engine, never stored.

func (c *cachedData) ListPolicies(context.Context, storage.Transaction) ([]string, error) {
	return nil, nil
}

func (c *cachedData) GetPolicy(_ context.Context, _ storage.Transaction, id string) ([]byte, error) {
	return nil, &storage.Error{Code: storage.NotFoundErr, Message: "policy " + id + " not found"}
}

func (c *cachedData) UpsertPolicy(context.Context, storage.Transaction, string, []byte) error {
	return errors.New("policies are not stored in the policy data store")
}

func (c *cachedData) DeletePolicy(_ context.Context, _ storage.Transaction, id string) error {
	return &storage.Error{Code: storage.NotFoundErr, Message: "policy " + id + " not found"}
}

// Triggers are not needed: the engine counts its own revisions.
func (c *cachedData) Register(context.Context, storage.Transaction, storage.TriggerConfig) (storage.TriggerHandle, error) {
	return noTrigger{}, nil
}

type noTrigger struct{}

func (noTrigger) Unregister(context.Context, storage.Transaction) {}
