package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/storage"

	"github.com/kavach-dev/kavach/domain"
)

// dbLookup stands in for the database behind CachedData: the same
// entities a Source holds, read one at a time, counting reads. Tests that
// need a real database use the store (service/replica and e2e tests).
type dbLookup struct {
	mu          sync.Mutex
	agents      map[string]domain.Agent
	delegations map[string]domain.Delegation
	approvals   map[string]domain.Approval
	reads       atomic.Int64
	// block, when set, is called by Agent before it answers (races).
	block func(id string)
	fail  error
}

func newDBLookup(src memSource) *dbLookup {
	l := &dbLookup{agents: map[string]domain.Agent{}, delegations: map[string]domain.Delegation{}, approvals: map[string]domain.Approval{}}
	_ = src.EachAgent(context.Background(), func(a domain.Agent) error { l.agents[a.ID] = a; return nil })
	for _, d := range src.delegations {
		l.delegations[d.ID] = d
	}
	for _, a := range src.approvals {
		l.approvals[a.ID] = a
	}
	return l
}

func (l *dbLookup) put(a domain.Agent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.agents[a.ID] = a
}

func (l *dbLookup) Agent(_ context.Context, id string) (domain.Agent, bool, error) {
	l.reads.Add(1)
	l.mu.Lock()
	a, ok := l.agents[id]
	block, fail := l.block, l.fail
	var in []string
	for _, d := range l.delegations {
		if d.ToAgent == id {
			in = append(in, d.ID)
		}
	}
	l.mu.Unlock()
	if fail != nil {
		return domain.Agent{}, false, fail
	}
	if block != nil {
		block(id)
	}
	slices.Sort(in)
	a.Incoming = in
	return a, ok, nil
}

func (l *dbLookup) AgentIDByToken(_ context.Context, hash string) (string, bool, error) {
	l.reads.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return "", false, l.fail
	}
	for _, a := range l.agents {
		if a.TokenHash == hash {
			return a.ID, true, nil
		}
	}
	return "", false, nil
}

func (l *dbLookup) Delegation(_ context.Context, id string) (domain.Delegation, bool, error) {
	l.reads.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.delegations[id]
	return d, ok, l.fail
}

func (l *dbLookup) Approval(_ context.Context, id string) (domain.Approval, bool, error) {
	l.reads.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.approvals[id]
	return a, ok, l.fail
}

// randomWorld is agents with every kind of permission, status, expiry,
// delegation chain and approval the policy distinguishes.
func randomWorld(r *rand.Rand, n int, now time.Time) memSource {
	resources := []string{"*", "mcp:github:*", "mcp:github:issues", "db:*:read", "mcp:deploy:production", "docs:public", "a:b:c"}
	actions := []string{"read", "write", "*", "execute", "comment"}
	constraints := []domain.Constraints{{}, {}, {MaxCallsPerHour: 3}, {IPAllowlist: []string{"10.0.0.0/8", "192.168.1.7"}},
		{RequireApproval: &yes}, {MinTrustLevel: domain.TrustTrusted}, {RequireApprovalBelow: domain.TrustStandard},
		{AllowedArgPatterns: []string{"^[a-z]+$"}}}
	var src memSource
	for i := range n {
		a := testAgent(fmt.Sprintf("agt_%d", i), fmt.Sprintf("h%d", i))
		for range r.IntN(5) {
			a.Permissions = append(a.Permissions, domain.Permission{Resource: resources[r.IntN(len(resources))],
				Actions:     []string{actions[r.IntN(len(actions))], actions[r.IntN(len(actions))]},
				Constraints: constraints[r.IntN(len(constraints))]})
		}
		switch r.IntN(10) {
		case 0:
			a.Status = domain.StatusRevoked
		case 1:
			a.Status = domain.StatusSuspended
		case 2:
			t := now.Add(-time.Minute)
			a.ExpiresAt = &t
		case 3:
			t := now.Add(time.Hour)
			a.ExpiresAt = &t
		}
		src.agents = append(src.agents, a)
	}
	for i := range n / 2 {
		from, to := src.agents[r.IntN(n)], src.agents[r.IntN(n)]
		if len(from.Permissions) == 0 || from.ID == to.ID {
			continue
		}
		p := from.Permissions[r.IntN(len(from.Permissions))]
		d := domain.Delegation{ID: fmt.Sprintf("dlg_%d", i), FromAgent: from.ID, ToAgent: to.ID, Status: domain.StatusActive,
			ExpiresAt: now.Add(time.Duration(r.IntN(3)-1) * time.Hour), Depth: 1, MaxDepth: 2,
			Permissions: []domain.Grant{{Resource: p.Resource, Actions: p.Actions, CoveredBy: PermissionKey(p.Resource, p.Actions), Chain: []domain.Link{}}}}
		if r.IntN(5) == 0 {
			d.Status = domain.StatusRevoked
		}
		src.delegations = append(src.delegations, d)
	}
	// The store lists an agent's incoming delegations by ID, in a full
	// load as in a single read.
	slices.SortFunc(src.delegations, func(a, b domain.Delegation) int { return strings.Compare(a.ID, b.ID) })
	for i := range n / 4 {
		a := src.agents[r.IntN(n)]
		src.approvals = append(src.approvals, domain.Approval{ID: fmt.Sprintf("apr_%d", i), AgentID: a.ID, Action: "execute",
			Resource: "mcp:deploy:production", StoredStatus: []string{"pending", "approved", "denied"}[r.IntN(3)],
			ExpiresAt: now.Add(time.Duration(r.IntN(3)-1) * time.Hour)})
	}
	return src
}

func randomInput(r *rand.Rand, n int, now time.Time) Input {
	in := Input{Action: []string{"read", "write", "execute", "comment", "drop"}[r.IntN(5)],
		Resource: []string{"mcp:github:issues", "mcp:github:repos:x", "db:main:read", "mcp:deploy:production", "docs:public", "a:b:c", "x"}[r.IntN(7)],
		Now:      now}
	id := r.IntN(n + 3) // a few unknown agents
	if r.IntN(4) == 0 {
		in.TokenHash = fmt.Sprintf("h%d", id)
	} else {
		in.AgentID = fmt.Sprintf("agt_%d", id)
	}
	if r.IntN(2) == 0 {
		in.IP = []string{"10.1.2.3", "192.168.1.7", "8.8.8.8"}[r.IntN(3)]
	}
	if r.IntN(3) == 0 {
		in.ApprovalID = fmt.Sprintf("apr_%d", r.IntN(n/4+2))
	}
	if r.IntN(3) == 0 {
		in.Arguments = json.RawMessage(`{"q": "` + []string{"abc", "ABC; drop"}[r.IntN(2)] + `"}`)
	}
	return in
}

// Decisions over CachedData are those over OPA's in-memory store holding
// everything, whatever memory holds: a handful of entries or all of them,
// before and after writes.
func TestCachedDataDecidesAsMemoryDoes(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := rand.New(rand.NewPCG(1, 2))
	const n = 300
	src := randomWorld(r, n, now)
	full, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := full.Load(ctx, src); err != nil {
		t.Fatal(err)
	}
	db := newDBLookup(src)
	engines := map[string]*Engine{}
	for _, capacity := range []int{1, 7, 10 * n} {
		e, err := NewWithData(ctx, CachedData(db, capacity), nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.Load(ctx, src)
		if err != nil || !c.OnDemand {
			t.Fatalf("Load over CachedData = %+v, %v; want on demand", c, err)
		}
		engines[fmt.Sprint("capacity=", capacity)] = e
	}
	compare := func(round string) {
		t.Helper()
		for range 1500 {
			in := randomInput(r, n, now)
			want, err := full.DecisionDocument(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			agent := in.AgentID
			if agent == "" {
				agent = "agt_0"
			}
			wantEff, err := full.EffectivePermissions(ctx, agent, now)
			if err != nil && !strings.Contains(err.Error(), "undefined") {
				t.Fatal(err)
			}
			for name, e := range engines {
				got, err := e.DecisionDocument(ctx, in)
				if err != nil {
					t.Fatalf("%s %s: %+v: %v", round, name, in, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s %s: %+v:\n got %v\nwant %v", round, name, in, got, want)
				}
				d, err := e.Decide(ctx, in)
				if err != nil || d.Code != want.(map[string]any)["code"] {
					t.Fatalf("%s %s: Decide(%+v) = %+v, %v; want %v", round, name, in, d, err, want)
				}
				gotEff, _ := e.EffectivePermissions(ctx, agent, now)
				if string(gotEff) != string(wantEff) {
					t.Fatalf("%s %s: effective permissions of %s = %s; want %s", round, name, agent, gotEff, wantEff)
				}
			}
		}
	}
	compare("before writes")

	// Writes reach both through Apply, as the replica sends them: this
	// replica's own and the change feed's. The database changes first.
	for i := range 60 {
		a := src.agents[r.IntN(n)]
		switch i % 4 {
		case 0:
			a.Status = domain.StatusRevoked
		case 1:
			a.TokenHash = fmt.Sprintf("h%d-rotated", i)
		case 2:
			a.Permissions = a.Permissions[:len(a.Permissions)/2]
		case 3:
			a.Permissions = append(slices.Clone(a.Permissions), domain.Permission{Resource: "*", Actions: []string{"read"}})
		}
		src.agents[indexOf(src.agents, a.ID)] = a
		db.put(a)
		got, _, _ := db.Agent(ctx, a.ID)
		for _, e := range append(slices.Collect(mapValues(engines)), full) {
			if err := e.Apply(ctx, Changes{Agents: []domain.Agent{got}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	compare("after writes")
	if st, ok := engines["capacity=7"].DataCache(); !ok || st.Entries > 5*7 || st.Misses == 0 || st.Hits == 0 {
		t.Errorf("stats of a 7-entry cache = %+v; want at most 35 entries (7 of each kind, and 7 absences), hits and misses", st)
	}
}

func indexOf(agents []domain.Agent, id string) int {
	return slices.IndexFunc(agents, func(a domain.Agent) bool { return a.ID == id })
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// Memory is bounded by the capacity whatever the number of agents, and a
// document once read is served from memory until evicted or written.
func TestCachedDataIsBounded(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	src := memSource{n: 5000, gen: func(i int) domain.Agent {
		return testAgent(fmt.Sprintf("agt_%d", i), fmt.Sprintf("h%d", i), domain.Permission{Resource: "docs:*", Actions: []string{"read"}})
	}}
	db := newDBLookup(src)
	e, err := NewWithData(ctx, CachedData(db, 100), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.NoCache = true
	for i := range 5000 {
		d, err := e.Decide(ctx, Input{AgentID: fmt.Sprintf("agt_%d", i), Action: "read", Resource: "docs:x", Now: now})
		if err != nil || d.Code != CodeAllowed {
			t.Fatalf("Decide agt_%d = %+v, %v", i, d, err)
		}
	}
	st, _ := e.DataCache()
	if st.Entries > 500 || st.Capacity != 100 {
		t.Fatalf("after 5000 agents: %+v; want at most 5×100 entries", st)
	}
	before := db.reads.Load()
	for range 10 {
		if d, _ := e.Decide(ctx, Input{AgentID: "agt_4999", Action: "read", Resource: "docs:x", Now: now}); d.Code != CodeAllowed {
			t.Fatal(d)
		}
	}
	if reads := db.reads.Load() - before; reads != 0 {
		t.Errorf("a hot agent's decisions read the database %d times; want 0", reads)
	}
	// An unknown agent is remembered as unknown, and a create ends that.
	for range 3 {
		if d, _ := e.Decide(ctx, Input{AgentID: "agt_new", Action: "read", Resource: "docs:x", Now: now}); d.Code != CodeAgentNotFound {
			t.Fatal(d)
		}
	}
	if reads := db.reads.Load() - before; reads != 1 {
		t.Errorf("three decisions on an unknown agent read the database %d times; want 1", reads)
	}
	created := testAgent("agt_new", "h-new", domain.Permission{Resource: "docs:*", Actions: []string{"read"}})
	db.put(created)
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{created}}); err != nil {
		t.Fatal(err)
	}
	for _, in := range []Input{{AgentID: "agt_new"}, {TokenHash: "h-new"}} {
		in.Action, in.Resource, in.Now = "read", "docs:x", now
		if d, err := e.Decide(ctx, in); err != nil || d.Code != CodeAllowed {
			t.Errorf("after the create, Decide(%+v) = %+v, %v", in, d, err)
		}
	}
}

// A token rotated on another replica reaches this one as the agent's new
// document only: the old token's entry, still in memory, must not resolve.
func TestCachedDataDropsRotatedTokens(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := testAgent("agt_a", "h-old", domain.Permission{Resource: "*", Actions: []string{"*"}})
	db := newDBLookup(memSource{agents: []domain.Agent{a}})
	data := CachedData(db, 10)
	e, err := NewWithData(ctx, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.NoCache = true
	old := Input{TokenHash: "h-old", Action: "read", Resource: "x", Now: now}
	if d, _ := e.Decide(ctx, old); d.Code != CodeAllowed {
		t.Fatal(d)
	}
	a.TokenHash = "h-new"
	db.put(a)
	// The change feed's write: the agent's document, nothing about tokens.
	c := data.(*cachedData)
	txn, _ := data.NewTransaction(ctx, storage.WriteParams)
	if err := data.Write(ctx, txn, storage.AddOp, join(agentsPath, "agt_a"), newDocBuilder().agent(a, nil)); err != nil {
		t.Fatal(err)
	}
	if err := data.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.tokens.Peek("h-old"); !ok {
		t.Fatal("test setup: the old token's entry should still be in memory")
	}
	if d, _ := e.Decide(ctx, old); d.Code != CodeInvalidToken {
		t.Errorf("old token after rotation = %+v; want invalid_token", d)
	}
	if d, _ := e.Decide(ctx, Input{TokenHash: "h-new", Action: "read", Resource: "x", Now: now}); d.Code != CodeAllowed {
		t.Errorf("new token after rotation = %+v; want allowed", d)
	}
}

// A read through that began before a write to the same agent is served
// but never remembered: the next decision sees the write.
func TestCachedDataNeverKeepsAReadOlderThanAWrite(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := testAgent("agt_a", "h-a", domain.Permission{Resource: "*", Actions: []string{"*"}})
	db := newDBLookup(memSource{agents: []domain.Agent{a}})
	e, err := NewWithData(ctx, CachedData(db, 10), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.NoCache = true
	reading, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	db.block = func(string) {
		once.Do(func() {
			close(reading)
			<-release
		})
	}
	in := Input{AgentID: "agt_a", Action: "read", Resource: "x", Now: now}
	first := make(chan Decision)
	go func() {
		d, _ := e.Decide(ctx, in)
		first <- d
	}()
	<-reading // the decision has read the active agent and waits
	revoked := a
	revoked.Status = domain.StatusRevoked
	db.put(revoked)
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{revoked}}); err != nil {
		t.Fatal(err)
	}
	close(release)
	if d := <-first; d.Code != CodeAllowed {
		t.Fatalf("the racing decision = %+v; it read the agent before the revoke", d)
	}
	if d, _ := e.Decide(ctx, in); d.Code != CodeAgentRevoked {
		t.Errorf("after the revoke = %+v; want agent_revoked (a stale read was remembered)", d)
	}
}

// A failing database fails the decisions that need it (never a deny that
// looks like the agent's own), and hot agents keep being decided.
func TestCachedDataDatabaseErrors(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	db := newDBLookup(memSource{agents: []domain.Agent{
		testAgent("agt_hot", "h-hot", domain.Permission{Resource: "*", Actions: []string{"*"}}),
		testAgent("agt_cold", "h-cold", domain.Permission{Resource: "*", Actions: []string{"*"}}),
	}})
	data := CachedData(db, 10)
	e, err := NewWithData(ctx, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.NoCache = true
	if d, _ := e.Decide(ctx, Input{AgentID: "agt_hot", Action: "read", Resource: "x", Now: now}); d.Code != CodeAllowed {
		t.Fatal(d)
	}
	db.mu.Lock()
	db.fail = fmt.Errorf("database is down")
	db.mu.Unlock()
	if d, err := e.Decide(ctx, Input{AgentID: "agt_cold", Action: "read", Resource: "x", Now: now}); err == nil || !strings.Contains(err.Error(), "database is down") {
		t.Errorf("cold agent with the database down = %+v, %v; want an error", d, err)
	}
	if d, err := e.Decide(ctx, Input{AgentID: "agt_hot", Action: "read", Resource: "x", Now: now}); err != nil || d.Code != CodeAllowed {
		t.Errorf("hot agent with the database down = %+v, %v; want allowed from memory", d, err)
	}
	if st, _ := e.DataCache(); st.Errors != 1 {
		t.Errorf("stats = %+v; want 1 error", st)
	}
}

// An extension that enumerates a collection fails loudly at load (the
// smoke test) instead of deciding on whatever memory holds.
func TestCachedDataRefusesEnumeration(t *testing.T) {
	ctx := t.Context()
	db := newDBLookup(memSource{})
	_, err := NewWithData(ctx, CachedData(db, 10), map[string]string{"count.rego": `package kavach.ext
deny contains {"code": "too_many", "reason": "too many agents"} if count(data.kavach.agents) > 1000
`})
	if err == nil || !strings.Contains(err.Error(), "cannot be enumerated") {
		t.Fatalf("an extension counting agents = %v; want refused at load, naming enumeration", err)
	}
}

// BenchmarkCachedDataMemory measures the heap an agent held in memory takes
// (its document and its token's entry), with BenchmarkDecide's five
// permissions, by filling a store with room for 20,000: "shared", agents
// holding equal permission sets (made from one template), and "distinct",
// each agent's first resource its own.
//
//	go test ./engine -run X -bench CachedDataMemory -benchtime 1x
func BenchmarkCachedDataMemory(b *testing.B) {
	const n = 20_000
	for _, distinct := range []bool{false, true} {
		b.Run(map[bool]string{false: "shared", true: "distinct"}[distinct], func(b *testing.B) {
			src := memSource{n: n, gen: func(i int) domain.Agent {
				first := "mcp:github:issues"
				if distinct {
					first = fmt.Sprintf("mcp:github:repo-%d", i)
				}
				return domain.Agent{ID: fmt.Sprintf("agt_%d", i), OwnerID: fmt.Sprintf("user-%d", i%100), Status: domain.StatusActive,
					TokenHash: fmt.Sprintf("%064d", i), Permissions: []domain.Permission{
						{Resource: first, Actions: []string{"read", "comment"}},
						{Resource: "mcp:github:*", Actions: []string{"read"}},
						{Resource: "admin:*:delete", Actions: []string{"*"}},
						{Resource: "docs:public", Actions: []string{"read"}},
						{Resource: "mcp:slack:channels", Actions: []string{"post"},
							Constraints: domain.Constraints{IPAllowlist: []string{"10.0.0.0/8"}, MaxCallsPerHour: 100}},
					}}
			}}
			db := newDBLookup(src)
			now := time.Now()
			for b.Loop() {
				e, err := NewWithData(b.Context(), CachedData(db, n), nil)
				if err != nil {
					b.Fatal(err)
				}
				e.NoCache = true
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for i := range n {
					in := Input{TokenHash: fmt.Sprintf("%064d", i), Action: "read", Resource: "mcp:github:repos", Now: now}
					if d, err := e.Decide(b.Context(), in); err != nil || !d.Allowed {
						b.Fatal(d, err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if st, _ := e.DataCache(); st.Entries != 2*n {
					b.Fatalf("entries = %d; want %d", st.Entries, 2*n)
				}
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/agent")
				runtime.KeepAlive(e)
			}
		})
	}
}
