// Package engine makes authorization decisions: it keeps agent, delegation
// and approval data in OPA's in-memory store, keyed by ID (and agents also by
// token hash), and evaluates the Kavach policies with prepared queries shared
// by all requests.
package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kavach-dev/kavach/domain"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"

	"github.com/kavach-dev/kavach/policies"
)

// Decision codes produced by the policy that callers act on.
const (
	CodeAllowed          = "allowed"
	CodeAgentNotFound    = "agent_not_found"
	CodeAgentRevoked     = "agent_revoked"
	CodeAgentSuspended   = "agent_suspended"
	CodeAgentExpired     = "agent_expired"
	CodeInvalidToken     = "invalid_token"
	CodeNoPermission     = "no_permission"
	CodeApprovalRequired = "approval_required"
	CodeRateLimited      = "rate_limited"
	// CodeTrustInsufficient: a permission's minTrustLevel ranks above the
	// calling agent's trust level.
	CodeTrustInsufficient = "trust_insufficient"
)

// Input is what the caller knows about one request. Exactly one of AgentID
// and TokenHash identifies the agent.
type Input struct {
	AgentID    string
	TokenHash  string
	Action     string
	Resource   string
	Arguments  json.RawMessage
	IP         string
	ApprovalID string
	// Calls counts the calls made in the last hour on this resource, per
	// permission key. Only needed when a permission has maxCallsPerHour.
	Calls map[string]int
	Now   time.Time
	// ScopeKeys, when not nil, limits the agent to the permissions with
	// these keys (those of an MCP access token's scopes); delegated
	// permissions then do not count.
	ScopeKeys []string
}

// Use describes the permission an allow relies on and what it consumes.
type Use struct {
	Key        string      `json:"key"`
	Source     string      `json:"source"`
	Resource   string      `json:"resource"`
	RateLimits []RateLimit `json:"rateLimits,omitempty"`
	ApprovalID string      `json:"approvalId,omitempty"`
}

// RateLimit is one maxCallsPerHour that applies to a call, counted under Key.
type RateLimit struct {
	Key string `json:"key"`
	Max int    `json:"max"`
}

// Decision is the policy's answer.
type Decision struct {
	Allowed bool   `json:"allowed"`
	Code    string `json:"code"`
	Reason  string `json:"reason"`
	AgentID string `json:"agentId"`
	OwnerID string `json:"ownerId"`
	// Permission is set on allows.
	Permission *Use `json:"permission,omitempty"`
	// ApprovalRequired asks the caller to open an approval request, for
	// ApprovalOwner to answer.
	ApprovalRequired bool   `json:"approvalRequired,omitempty"`
	ApprovalOwner    string `json:"approvalOwner,omitempty"`
	// Consumes is the policy's word that the decision depends on the call
	// counts (Input.Calls) or uses up quota or an approval: the caller
	// decides again, with the counts, under a lock that makes counting,
	// deciding and recording one step for the agent.
	Consumes bool `json:"consumes,omitempty"`
	// cacheable and cacheUntil are the policy's cache field: whether the
	// decision may be served from the cache, and until which Unix-nanosecond
	// instant.
	cacheable  bool
	cacheUntil int64
}

// TrustLevel is the trust level the policy sees for agent id, "" when it
// has none (an unknown agent). For tracing, once per traced decision: a
// read of the data, remembered until the data's revision changes, so a
// known agent's level costs a map lookup.
func (e *Engine) TrustLevel(ctx context.Context, id string) string {
	if id == "" {
		return ""
	}
	// The revision is read before the data: a level read from data newer
	// than its revision is only remembered for less long.
	rev := e.revision.Load()
	t := e.trust.Load()
	if t == nil || t.revision != rev {
		t = &trustLevels{revision: rev, levels: map[string]string{}}
		e.trust.Store(t)
	}
	t.mu.RLock()
	level, ok := t.levels[id]
	t.mu.RUnlock()
	if ok {
		return level
	}
	v, err := storage.ReadOne(ctx, e.data, storage.Path{"kavach", "agents", id, "trust", "level"})
	if err != nil {
		return ""
	}
	switch l := v.(type) {
	case ast.String:
		level = string(l)
	case string:
		level = l
	}
	if level != "" {
		// Only known agents, and at most as many as the decision cache
		// holds: memory stays bounded whatever IDs callers send and however
		// many agents exist; past that, a level is read each time.
		t.mu.Lock()
		if len(t.levels) < cacheSize {
			t.levels[id] = level
		}
		t.mu.Unlock()
	}
	return level
}

// trustLevels are the agents' trust levels read at one data revision.
type trustLevels struct {
	revision uint64
	mu       sync.RWMutex
	levels   map[string]string
}

// Engine evaluates decisions. It is safe for concurrent use: OPA's store
// admits one writer and many readers, each decision reading a consistent
// snapshot; the compiled policies are swapped whole when extensions reload.
type Engine struct {
	data storage.Store
	q    atomic.Pointer[compiled]
	// revision changes with every write to data and every policy reload:
	// cached decisions are keyed by it.
	revision atomic.Uint64
	cache    *lru.Cache[cacheKey, cacheEntry]
	// trust remembers trust levels for tracing (TrustLevel).
	trust atomic.Pointer[trustLevels]
	// NoCache turns the decision cache off (benchmarks of uncached cost).
	NoCache bool
}

// compiled is one generation of policies and the queries prepared on them.
type compiled struct {
	decide, effective, delegation, explain rego.PreparedEvalQuery
	// denyAgent and denyDelegation are the extensions' validation rules
	// (validate.go); nil when no extension defines them.
	denyAgent, denyDelegation *rego.PreparedEvalQuery
	policies                  Policies
	// sources are the extensions' texts, for bundles of what is served.
	sources map[string]string
}

// Policies describes the loaded policy modules.
type Policies struct {
	// Revision is a hash of every module's name and text.
	Revision string    `json:"revision"`
	LoadedAt time.Time `json:"loadedAt"`
	Modules  []Module  `json:"modules"`
}

// Module is one loaded policy file.
type Module struct {
	File    string `json:"file"`
	Package string `json:"package"`
	// Source is "core" (built into Kavach) or "extension".
	Source string `json:"source"`
	SHA256 string `json:"sha256"`
}

// ExtensionPackage is where extensions live; only its deny set is
// consulted, and only to deny (and, for writes of agents and delegations,
// its validation rules: validate.go).
const ExtensionPackage = "kavach.ext"

var (
	agentsPath      = storage.MustParsePath("/kavach/agents")
	tokensPath      = storage.MustParsePath("/kavach/tokens")
	delegationsPath = storage.MustParsePath("/kavach/delegations")
	approvalsPath   = storage.MustParsePath("/kavach/approvals")
)

// New compiles the embedded policies, with extensions if any (file name →
// Rego source), against an empty data set in OPA's in-memory store.
func New(ctx context.Context, extensions ...map[string]string) (*Engine, error) {
	var ext map[string]string
	if len(extensions) > 0 {
		ext = extensions[0]
	}
	return NewWithData(ctx, MemoryData(), ext)
}

// NewWithData is New over a given store of policy data: see Data.
func NewWithData(ctx context.Context, data storage.Store, extensions map[string]string) (*Engine, error) {
	e := &Engine{data: data, cache: newDecisionCache()}
	if err := e.SetExtensions(ctx, extensions); err != nil {
		return nil, err
	}
	return e, nil
}

// SetExtensions compiles the core policies with these extensions and, only
// if that succeeds, makes them the ones decisions use. On error the
// policies in use stay as they were.
func (e *Engine) SetExtensions(ctx context.Context, extensions map[string]string) error {
	c, err := e.compile(ctx, extensions)
	if err != nil {
		return err
	}
	e.q.Store(c)
	e.revision.Add(1)
	return nil
}

// Policies describes the policies in use.
func (e *Engine) Policies() Policies { return e.q.Load().policies }

// Extensions returns the sources of the extensions in use.
func (e *Engine) Extensions() map[string]string { return maps.Clone(e.q.Load().sources) }

// smoke evaluates the extensions' deny set on sample requests against the
// current data before they may serve: an extension that compiles but fails
// at run time (conflicting rule values, say) would otherwise turn every
// allowed call into a policy error. Samples cannot prove an extension
// sound; its own tests, run with `opa test` beside the core, should.
func (e *Engine) smoke(ctx context.Context, compiler *ast.Compiler) error {
	pq, err := rego.New(rego.Query("data.kavach.ext.deny"), rego.Compiler(compiler), rego.Store(e.data)).PrepareForEval(ctx)
	if err != nil {
		return fmt.Errorf("prepare extensions: %w", err)
	}
	now := ast.NewTerm(ast.Number(strconv.FormatInt(time.Now().UnixNano(), 10)))
	for _, action := range []string{"read", "write", "delete", "drop", "execute", "*"} {
		for _, resource := range []string{"x", "db:prod", "mcp:github:repos", "admin:projects:delete"} {
			for _, withNow := range []bool{true, false} {
				items := [][2]*ast.Term{
					ast.Item(ast.StringTerm("agentId"), ast.StringTerm("agt_smoke_test")),
					ast.Item(ast.StringTerm("action"), ast.StringTerm(action)),
					ast.Item(ast.StringTerm("resource"), ast.StringTerm(resource)),
				}
				if withNow {
					items = append(items, ast.Item(ast.StringTerm("now"), now))
				}
				if _, err := pq.Eval(ctx, rego.EvalParsedInput(ast.NewObject(items...))); err != nil {
					return fmt.Errorf("extensions fail at run time (action %q on %q): %w", action, resource, err)
				}
			}
		}
	}
	return nil
}

func (e *Engine) compile(ctx context.Context, extensions map[string]string) (*compiled, error) {
	core, err := policies.Modules()
	if err != nil {
		return nil, err
	}
	parsed := map[string]*ast.Module{}
	var mods []Module
	add := func(name, src, source string) error {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return fmt.Errorf("parse %s: %w", name, err)
		}
		pkg := strings.TrimPrefix(m.Package.Path.String(), "data.")
		if source == "extension" && pkg != ExtensionPackage && !strings.HasPrefix(pkg, ExtensionPackage+".") {
			return fmt.Errorf("extension %s: package %s is not allowed: extensions must be in package %s (or below it)", name, pkg, ExtensionPackage)
		}
		if _, dup := parsed[name]; dup {
			return fmt.Errorf("policy file %s is given twice", name)
		}
		parsed[name] = m
		sum := sha256.Sum256([]byte(src))
		mods = append(mods, Module{File: name, Package: pkg, Source: source, SHA256: hex.EncodeToString(sum[:])})
		return nil
	}
	for name, src := range core {
		if err := add(name, src, "core"); err != nil {
			return nil, err
		}
	}
	for name, src := range extensions {
		if err := add(name, src, "extension"); err != nil {
			return nil, err
		}
	}
	compiler := ast.NewCompiler()
	if compiler.Compile(parsed); compiler.Failed() {
		return nil, fmt.Errorf("compile policies: %w", compiler.Errors)
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].File < mods[j].File })
	h := sha256.New()
	for _, m := range mods {
		fmt.Fprintf(h, "%s\x00%s\x00", m.File, m.SHA256)
	}
	c := &compiled{policies: Policies{Revision: hex.EncodeToString(h.Sum(nil))[:16], LoadedAt: time.Now().UTC(), Modules: mods},
		sources: maps.Clone(extensions)}
	if len(extensions) > 0 {
		if err := e.smoke(ctx, compiler); err != nil {
			return nil, err
		}
		if c.denyAgent, c.denyDelegation, err = e.validationRules(ctx, compiler); err != nil {
			return nil, err
		}
		if err := smokeValidation(ctx, c); err != nil {
			return nil, err
		}
	}
	for _, q := range []struct {
		query string
		dst   *rego.PreparedEvalQuery
	}{
		{policies.DecisionQuery, &c.decide},
		{policies.EffectivePermissionsQuery, &c.effective},
		{policies.DelegationQuery, &c.delegation},
		{policies.ExplanationQuery, &c.explain},
	} {
		pq, err := rego.New(rego.Query(q.query), rego.Compiler(compiler), rego.Store(e.data)).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("prepare %s: %w", q.query, err)
		}
		*q.dst = pq
	}
	return c, nil
}

// Decide evaluates the policy for one request.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	var key cacheKey
	if !e.NoCache {
		key = e.cacheKey(in)
		if c, ok := e.cache.Get(key); ok && in.Now.UnixNano() < c.until {
			return c.d, nil
		}
	}
	input, err := in.value()
	if err != nil {
		return Decision{}, err
	}
	// The evaluation's caches come from pools and go back once the result
	// is read: the terms they held stay valid, only the caches are reused.
	vc, bc := getVirtualCache(), getBaseCache()
	v, err := evalOne(ctx, e.q.Load().decide, input, decideOptions[0], decideOptions[1],
		rego.EvalVirtualCache(vc), rego.EvalBaseCache(bc))
	var d Decision
	if err == nil {
		d, err = decodeDecision(v)
	}
	putVirtualCache(vc)
	putBaseCache(bc)
	if err != nil || e.NoCache {
		return d, err
	}
	if until, ok := cacheable(d); ok && in.Now.UnixNano() < until {
		e.cache.Add(key, cacheEntry{d: d, until: until})
	}
	return d, nil
}

// DecisionDocument is the policy's raw decision document, as stock OPA
// returns it for data.kavach.authz.decision (for parity checks).
func (e *Engine) DecisionDocument(ctx context.Context, in Input) (any, error) {
	input, err := in.value()
	if err != nil {
		return nil, err
	}
	return evalOne(ctx, e.q.Load().decide, input)
}

// Explain returns data.kavach.authz.explanation for the request.
func (e *Engine) Explain(ctx context.Context, in Input) (json.RawMessage, error) {
	input, err := in.value()
	if err != nil {
		return nil, err
	}
	v, err := evalOne(ctx, e.q.Load().explain, input)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// InputDocument is the input the engine evaluates for in, as JSON: what a
// caller of stock OPA passes to get the same decision.
func (in Input) InputDocument() (any, error) {
	v, err := in.value()
	if err != nil {
		return nil, err
	}
	return ast.JSON(v)
}

func (in Input) value() (ast.Value, error) {
	items := [][2]*ast.Term{
		ast.Item(ast.InternedTerm("action"), ast.StringTerm(in.Action)),
		ast.Item(ast.InternedTerm("resource"), ast.StringTerm(in.Resource)),
		ast.Item(ast.InternedTerm("now"), nanos(in.Now)),
	}
	switch {
	case in.AgentID != "":
		items = append(items, ast.Item(ast.InternedTerm("agentId"), ast.StringTerm(in.AgentID)))
	case in.TokenHash != "":
		items = append(items, ast.Item(ast.InternedTerm("tokenHash"), ast.StringTerm(in.TokenHash)))
	}
	if in.IP != "" {
		items = append(items, ast.Item(ast.InternedTerm("ip"), ast.StringTerm(in.IP)))
	}
	if in.ApprovalID != "" {
		items = append(items, ast.Item(ast.InternedTerm("approvalId"), ast.StringTerm(in.ApprovalID)))
	}
	if len(in.Arguments) > 0 {
		args, err := ast.ValueFromReader(bytes.NewReader(in.Arguments))
		if err != nil {
			return nil, fmt.Errorf("arguments: %w", err)
		}
		items = append(items, ast.Item(ast.InternedTerm("arguments"), ast.NewTerm(args)))
	}
	if in.ScopeKeys != nil {
		keys := make([]*ast.Term, len(in.ScopeKeys))
		for i, k := range in.ScopeKeys {
			keys[i] = ast.StringTerm(k)
		}
		items = append(items, ast.Item(ast.InternedTerm("scopeKeys"), ast.ArrayTerm(keys...)))
	}
	if len(in.Calls) > 0 {
		calls := ast.NewObject()
		for k, n := range in.Calls {
			calls.Insert(ast.StringTerm(k), ast.IntNumberTerm(n))
		}
		items = append(items, ast.Item(ast.InternedTerm("calls"), ast.NewTerm(calls)))
	}
	return ast.NewObject(items...), nil
}

func nanos(t time.Time) *ast.Term {
	return ast.NewTerm(ast.Number(strconv.FormatInt(t.UnixNano(), 10)))
}

func evalOne(ctx context.Context, pq rego.PreparedEvalQuery, input ast.Value, opts ...rego.EvalOption) (any, error) {
	rs, err := pq.Eval(ctx, append([]rego.EvalOption{rego.EvalParsedInput(input)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("evaluate policy: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, errors.New("evaluate policy: result is undefined")
	}
	return rs[0].Expressions[0].Value, nil
}

// decideOptions are Decide's evaluation options: the result as an AST value,
// and no metrics (nobody reads them; OPA would allocate a set per decision).
var decideOptions = []rego.EvalOption{rego.EvalGenerateJSON(asValue), rego.EvalMetrics(metrics.NoOp())}

// asValue hands a result over as the evaluation left it, an ast.Value:
// Decide reads the few fields it needs from the decision document instead
// of converting all of it to Go maps first.
func asValue(t *ast.Term, _ *rego.EvalContext) (any, error) { return t.Value, nil }

// The names of the decision document's fields, as terms to look them up by.
var (
	fieldAllowed          = ast.StringTerm("allowed")
	fieldCode             = ast.StringTerm("code")
	fieldReason           = ast.StringTerm("reason")
	fieldAgentID          = ast.StringTerm("agentId")
	fieldOwnerID          = ast.StringTerm("ownerId")
	fieldApprovalRequired = ast.StringTerm("approvalRequired")
	fieldApprovalOwner    = ast.StringTerm("approvalOwner")
	fieldConsumes         = ast.StringTerm("consumes")
	fieldCache            = ast.StringTerm("cache")
	fieldUntil            = ast.StringTerm("until")
	fieldPermission       = ast.StringTerm("permission")
	fieldKey              = ast.StringTerm("key")
	fieldSource           = ast.StringTerm("source")
	fieldResource         = ast.StringTerm("resource")
	fieldApprovalID       = ast.StringTerm("approvalId")
	fieldRateLimits       = ast.StringTerm("rateLimits")
	fieldMax              = ast.StringTerm("max")
)

// field returns obj[name]'s value, nil if obj is no object or lacks it.
func field(obj ast.Value, name *ast.Term) ast.Value {
	o, ok := obj.(ast.Object)
	if !ok {
		return nil
	}
	if t := o.Get(name); t != nil {
		return t.Value
	}
	return nil
}

func stringField(obj ast.Value, name *ast.Term) (string, bool) {
	s, ok := field(obj, name).(ast.String)
	return string(s), ok
}

func boolField(obj ast.Value, name *ast.Term) (bool, bool) {
	b, ok := field(obj, name).(ast.Boolean)
	return bool(b), ok
}

func decodeDecision(v any) (Decision, error) {
	doc, ok := v.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("evaluate policy: decision is %T, not an object", v)
	}
	var d Decision
	var okA, okC, okR bool
	d.Allowed, okA = boolField(doc, fieldAllowed)
	d.Code, okC = stringField(doc, fieldCode)
	d.Reason, okR = stringField(doc, fieldReason)
	d.AgentID, _ = stringField(doc, fieldAgentID)
	d.OwnerID, _ = stringField(doc, fieldOwnerID)
	d.ApprovalRequired, _ = boolField(doc, fieldApprovalRequired)
	d.ApprovalOwner, _ = stringField(doc, fieldApprovalOwner)
	d.Consumes, _ = boolField(doc, fieldConsumes)
	d.cacheUntil, d.cacheable = decodeCache(field(doc, fieldCache))
	if p, ok := field(doc, fieldPermission).(ast.Object); ok {
		u := &Use{}
		u.Key, _ = stringField(p, fieldKey)
		u.Source, _ = stringField(p, fieldSource)
		u.Resource, _ = stringField(p, fieldResource)
		u.ApprovalID, _ = stringField(p, fieldApprovalID)
		if limits, ok := field(p, fieldRateLimits).(*ast.Array); ok {
			for i := range limits.Len() {
				l := limits.Elem(i).Value
				key, _ := stringField(l, fieldKey)
				n, _ := field(l, fieldMax).(ast.Number)
				limit, ok := n.Int()
				if !ok || key == "" {
					return Decision{}, fmt.Errorf("evaluate policy: malformed rate limit %v", l)
				}
				u.RateLimits = append(u.RateLimits, RateLimit{Key: key, Max: limit})
			}
		}
		d.Permission = u
	}
	if !okA || !okC || !okR {
		return Decision{}, fmt.Errorf("evaluate policy: malformed decision %v", doc)
	}
	return d, nil
}

// EffectivePermissions returns the agent's own permissions and those
// delegated to it through intact chains, as the policy computes them.
func (e *Engine) EffectivePermissions(ctx context.Context, agentID string, now time.Time) (json.RawMessage, error) {
	input := ast.NewObject(
		ast.Item(ast.InternedTerm("agentId"), ast.StringTerm(agentID)),
		ast.Item(ast.InternedTerm("now"), nanos(now)),
	)
	v, err := evalOne(ctx, e.q.Load().effective, input)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// DelegationRequest is a proposed delegation, for CheckDelegation.
type DelegationRequest struct {
	FromAgent   string              `json:"fromAgent"`
	ToAgent     string              `json:"toAgent"`
	Permissions []domain.Permission `json:"permissions"`
	MaxDepth    int                 `json:"maxDepth"`
	Now         int64               `json:"now"`
}

// DelegationVerdict is the policy's verdict on a proposed delegation.
type DelegationVerdict struct {
	OK       bool   `json:"ok"`
	Code     string `json:"code"`
	Reason   string `json:"reason"`
	Depth    int    `json:"depth"`
	MaxDepth int    `json:"maxDepth"`
	Grants   []struct {
		Resource    string             `json:"resource"`
		Actions     []string           `json:"actions"`
		Constraints domain.Constraints `json:"constraints"`
		Inherited   []domain.Inherited `json:"inherited"`
		Chain       [][2]any           `json:"chain"`
		CoveredBy   string             `json:"coveredBy"`
	} `json:"grants"`
}

// CheckDelegation asks the policy whether a delegation may be created, and
// what each delegated permission inherits. It is off the hot path, so a
// JSON round trip keeps it simple.
func (e *Engine) CheckDelegation(ctx context.Context, req DelegationRequest, now time.Time) (DelegationVerdict, error) {
	req.Now = now.UnixNano()
	b, err := json.Marshal(req)
	if err != nil {
		return DelegationVerdict{}, fmt.Errorf("encode delegation: %w", err)
	}
	input, err := ast.ValueFromReader(bytes.NewReader(b))
	if err != nil {
		return DelegationVerdict{}, fmt.Errorf("encode delegation: %w", err)
	}
	v, err := evalOne(ctx, e.q.Load().delegation, input)
	if err != nil {
		return DelegationVerdict{}, err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return DelegationVerdict{}, fmt.Errorf("decode verdict: %w", err)
	}
	var verdict DelegationVerdict
	if err := json.Unmarshal(out, &verdict); err != nil {
		return DelegationVerdict{}, fmt.Errorf("decode verdict: %w", err)
	}
	return verdict, nil
}
