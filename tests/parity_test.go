package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/bundle"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/store"
)

// TestParityWithStockOPA builds a bundle from generated data (random
// agents at every trust level, suspended ones among them, wildcard
// resources, constraints, trust constraints, delegation chains, approvals),
// loads it into stock `opa run --server`, and requires the sidecar's
// decision document to equal OPA's for thousands of generated requests,
// with the same facts (time, call counts, IP, arguments) as input to both.
func TestParityWithStockOPA(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	g := newWorld(t, 42)
	bundlePath := filepath.Join(dir, "kavach.tar.gz")
	var buf bytes.Buffer
	info, err := bundle.Build(ctx, g.src, bundle.Options{Revision: 1, Extensions: g.extensions}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundlePath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	opaURL := startOPA(t, dir, bundlePath)

	eng, err := engine.New(ctx, g.extensions)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Load(ctx, g.src); err != nil {
		t.Fatal(err)
	}
	// The sidecar's default store, with room for 16 agents: every document
	// read through from the database, most of them again and again.
	bounded, err := engine.NewWithData(ctx, engine.CachedData(replica.Lookup(g.src), 16), g.extensions)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	codes := map[string]int{}
	mismatches, explained, waived, cutOff := 0, 0, 0, 0
	for i := range n {
		in := g.request(i)
		ours, err := eng.DecisionDocument(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if read, err := bounded.DecisionDocument(ctx, in); err != nil || !reflect.DeepEqual(read, ours) {
			mismatches++
			if mismatches <= 5 {
				t.Errorf("request %d: the bounded store decides otherwise than memory\ninput: %+v\nbounded: %v (%v)\nmemory:  %v", i, in, read, err, ours)
			}
		}
		doc, err := in.InputDocument()
		if err != nil {
			t.Fatal(err)
		}
		theirs := queryOPA(t, opaURL, "decision", doc)
		if !sameJSON(t, ours, theirs) {
			mismatches++
			if mismatches <= 5 {
				in, _ := json.Marshal(doc)
				a, _ := json.Marshal(ours)
				b, _ := json.Marshal(theirs)
				t.Errorf("request %d differs\ninput: %s\nsidecar: %s\nopa:     %s", i, in, a, b)
			}
		}
		code := codeOf(ours)
		codes[code]++
		if m, _ := ours.(map[string]any); strings.Contains(fmt.Sprint(m["reason"]), "whose delegator is suspended") {
			cutOff++
		}
		if i%5 == 0 || code == "allowed" || code == "trust_insufficient" || strings.HasPrefix(code, "approval_") {
			// Explanations too: every fifth request and those trust may
			// have decided.
			explained++
			raw, err := eng.Explain(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			var ex any
			if err := json.Unmarshal(raw, &ex); err != nil {
				t.Fatal(err)
			}
			if theirs := queryOPA(t, opaURL, "explanation", doc); !sameJSON(t, ex, theirs) {
				mismatches++
				if mismatches <= 5 {
					in, _ := json.Marshal(doc)
					b, _ := json.Marshal(theirs)
					t.Errorf("request %d: explanations differ\ninput: %s\nsidecar: %s\nopa:     %s", i, in, raw, b)
				}
			}
			if strings.Contains(string(raw), "high enough to skip approval") {
				waived++
			}
		}
	}
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var dist bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&dist, " %s=%d", k, codes[k])
	}
	t.Logf("parity: %d requests (%d explained) over %d agents, %d delegations, %d approvals (bundle revision %s): %d mismatches; codes:%s; "+
		"explained with an approval waived by trust: %d; cut off by a suspended delegator: %d",
		n, explained, info.Agents, info.Delegations, info.Approvals, info.Revision, mismatches, dist.String(), waived, cutOff)
	if len(codes) < 12 {
		t.Errorf("the generated requests reach only %d decision codes; the generator should exercise more branches", len(codes))
	}
	for _, c := range []string{"agent_suspended", "trust_insufficient", "approval_required", "delegation_revoked"} {
		if codes[c] == 0 {
			t.Errorf("no generated request was decided %s; the generator should reach it", c)
		}
	}
	if waived == 0 || cutOff == 0 {
		t.Errorf("generated requests explained with an approval waived by trust: %d, cut off by a suspended delegator: %d; the generator should reach both",
			waived, cutOff)
	}
}

// world is generated data and a generator of requests over it.
type world struct {
	st         *store.Store
	src        trustedSource
	rng        *rand.Rand
	now        time.Time
	agents     []string
	tokens     []string
	approvals  []string
	extensions map[string]string
}

var (
	parityResources = []string{"mcp:github:repos", "mcp:github:issues", "mcp:github:repos:issues", "mcp:github", "mcp:slack:general",
		"admin:projects:delete", "admin:x:create", "db:prod", "db:staging", "fs:repo", "docs:public", "a:b:c:d"}
	parityPatterns = []string{"*", "mcp:*", "mcp:github:*", "mcp:github:issues", "admin:*:delete", "db:*", "db:prod", "fs:*", "docs:public", "*:*", "a:*:c:*"}
	parityActions  = []string{"read", "write", "comment", "delete", "execute", "drop"}
)

func newWorld(t *testing.T, seed uint64) *world {
	t.Helper()
	ctx := t.Context()
	g := &world{rng: rand.New(rand.NewPCG(seed, seed)), now: time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)}
	clock := &g.now
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return *clock }
	st, err := store.Open(ctx, store.Options{URL: filepath.Join(t.TempDir(), "parity.db"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	g.st = st
	g.src = trustedSource{Store: st, trust: map[string]domain.Trust{}, suspended: map[string]bool{}}
	g.extensions = map[string]string{"freeze.rego": `package kavach.ext

deny contains {"code": "change_freeze", "reason": "no drops on production during the freeze"} if {
	input.action == "drop"
	input.resource == "db:prod"
}
`}
	eng, _ := engine.New(ctx, g.extensions)
	svc, err := service.New(st, eng, service.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	pick := func(xs []string) string { return xs[g.rng.IntN(len(xs))] }
	for i := range 60 {
		var perms []api.Permission
		seen := map[string]bool{}
		for range 1 + g.rng.IntN(4) {
			p := api.Permission{Resource: pick(parityPatterns), Actions: []string{pick(parityActions)}}
			if g.rng.IntN(4) == 0 {
				p.Actions = []string{"*"}
			}
			k := engine.PermissionKey(p.Resource, p.Actions)
			if seen[k] {
				continue
			}
			seen[k] = true
			if g.rng.IntN(2) == 0 {
				p.Constraints = g.constraints()
			}
			perms = append(perms, p)
		}
		req := api.CreateAgentRequest{OwnerID: fmt.Sprint("user-", i%5), Name: fmt.Sprint("agent-", i), Permissions: perms}
		if i%10 == 9 {
			exp := g.now.Add(time.Minute) // expired by the time requests run
			req.ExpiresAt = api.NewTimePtr(&exp)
		}
		a, err := svc.CreateAgent(ctx, req)
		if err != nil {
			t.Fatalf("create agent %d: %v", i, err)
		}
		g.agents = append(g.agents, a.ID)
		g.tokens = append(g.tokens, a.Token)
		// Every level, at a score the default thresholds put there; every
		// seventh agent keeps the store's own trust (or the initial level).
		if i%7 != 3 {
			level := g.rng.IntN(len(domain.TrustLevels))
			score := []int{0, 40, 60, 80, 95}[level] + g.rng.IntN([]int{40, 20, 20, 15, 6}[level])
			g.src.trust[a.ID] = domain.Trust{Score: score, Level: domain.DefaultTrustThresholds.Level(score), ComputedAt: g.now}
		}
		if i%13 == 12 {
			if _, err := svc.RevokeAgent(ctx, a.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Delegation chains: each agent tries to pass on some of what it holds.
	var delegations []string
	for range 80 {
		from, to := pick(g.agents), pick(g.agents)
		eff, err := svc.EffectivePermissions(ctx, from)
		if err != nil || len(eff) == 0 {
			continue
		}
		p := eff[g.rng.IntN(len(eff))]
		exp := g.now.Add(time.Duration(1+g.rng.IntN(3)) * time.Hour)
		if g.rng.IntN(6) == 0 {
			exp = g.now.Add(2 * time.Minute) // expired when requests run
		}
		depth := 1 + g.rng.IntN(3)
		d, err := svc.Delegate(ctx, api.DelegateRequest{FromAgent: from, ToAgent: to, ExpiresAt: api.NewTimePtr(&exp), MaxDepth: &depth,
			Permissions: []api.Permission{{Resource: p.Resource, Actions: p.Actions}}})
		if err == nil {
			delegations = append(delegations, d.ID)
		}
	}
	for i, id := range delegations {
		if i%7 == 3 {
			if _, err := svc.RevokeDelegation(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Suspended after delegating, as containment would: their own calls
	// and the chains they delegate through stop counting.
	for i, id := range g.agents {
		if i%9 == 4 {
			g.src.suspended[id] = true
		}
	}
	// Approval requests in every state.
	for i := range 30 {
		a, err := st.CreateApproval(ctx, domain.Approval{AgentID: pick(g.agents), OwnerID: "user-0", Action: pick(parityActions),
			Resource: pick(parityResources), ExpiresAt: g.now.Add(time.Duration(i%3) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		switch i % 4 {
		case 1:
			_, err = st.ResolveApproval(ctx, a.ID, domain.ApprovalApproved, "")
		case 2:
			_, err = st.ResolveApproval(ctx, a.ID, domain.ApprovalDenied, "")
		}
		if err != nil && i%3 != 0 {
			t.Fatal(err)
		}
		g.approvals = append(g.approvals, a.ID)
	}
	mu.Lock()
	g.now = g.now.Add(5 * time.Minute) // the requests' time: some things have expired
	mu.Unlock()
	return g
}

func (g *world) constraints() map[string]any {
	c := map[string]any{}
	level := func() string { return domain.TrustLevels[g.rng.IntN(len(domain.TrustLevels))] }
	switch g.rng.IntN(9) {
	case 0:
		c["maxCallsPerHour"] = float64(1 + g.rng.IntN(5))
	case 1:
		c["requireApproval"] = true
	case 2:
		c["ipAllowlist"] = []any{"10.0.0.0/8", "2001:db8::/32", "192.168.1.50"}
	case 3:
		start := []string{"09:00", "22:00", "00:00", "10:00"}[g.rng.IntN(4)]
		end := []string{"17:00", "02:00", "00:00", "11:00"}[g.rng.IntN(4)]
		w := map[string]any{"start": start, "end": end}
		if g.rng.IntN(2) == 0 {
			w["timezone"] = []any{"UTC", "Asia/Tokyo", "America/New_York"}[g.rng.IntN(3)]
		}
		if g.rng.IntN(2) == 0 {
			w["days"] = []any{"mon", "wed", "fri"}
		}
		c["timeWindow"] = w
	case 4:
		c["allowedArgPatterns"] = []any{`^src/.*\.ts$`, `^README\.md$`}
	case 5:
		c["maxCallsPerHour"] = float64(2)
		c["requireApproval"] = true
	case 6:
		c["minTrustLevel"] = level()
	case 7:
		c["requireApproval"] = level()
	case 8:
		c["minTrustLevel"] = level()
		c["requireApproval"] = level()
		if g.rng.IntN(2) == 0 {
			c["ipAllowlist"] = []any{"10.0.0.0/8"}
		}
	}
	return c
}

// trustedSource is the store with trust levels and suspensions laid over
// its agents, as the policy data would carry them once the trust scorer or
// containment has set them: the parity test needs every level and some
// suspended agents whatever the store's own scores say.
type trustedSource struct {
	*store.Store
	trust     map[string]domain.Trust
	suspended map[string]bool
}

func (s trustedSource) EachAgent(ctx context.Context, fn func(domain.Agent) error) error {
	return s.Store.EachAgent(ctx, func(a domain.Agent) error {
		if t, ok := s.trust[a.ID]; ok {
			a.Trust = t
		}
		if s.suspended[a.ID] && a.Status != domain.StatusRevoked {
			a.Status = domain.StatusSuspended
		}
		return fn(a)
	})
}

// PolicyAgent is one agent with the same overlay, for the bounded store's
// reads through.
func (s trustedSource) PolicyAgent(ctx context.Context, id string) (domain.Agent, error) {
	a, err := s.Store.PolicyAgent(ctx, id)
	if err != nil {
		return a, err
	}
	if t, ok := s.trust[a.ID]; ok {
		a.Trust = t
	}
	if s.suspended[a.ID] && a.Status != domain.StatusRevoked {
		a.Status = domain.StatusSuspended
	}
	return a, nil
}

func (g *world) request(_ int) engine.Input {
	pick := func(xs []string) string { return xs[g.rng.IntN(len(xs))] }
	in := engine.Input{Action: pick(parityActions), Resource: pick(parityResources), Now: g.now.Add(time.Duration(g.rng.IntN(20)) * time.Hour)}
	k := g.rng.IntN(len(g.agents))
	switch g.rng.IntN(10) {
	case 0:
		sum := sha256.Sum256([]byte(g.tokens[k]))
		in.TokenHash = hex.EncodeToString(sum[:])
	case 1:
		in.TokenHash = "0000"
	case 2:
		in.AgentID = "agt_unknown"
	default:
		in.AgentID = g.agents[k]
	}
	if g.rng.IntN(2) == 0 {
		in.IP = []string{"10.1.2.3", "192.168.1.50", "8.8.8.8", "2001:db8::1"}[g.rng.IntN(4)]
	}
	if g.rng.IntN(3) == 0 {
		in.Arguments = json.RawMessage([]string{`{"path":"src/a.ts"}`, `{"path":"/etc/passwd"}`, `{"files":["README.md",{"x":"src/b.ts"}]}`}[g.rng.IntN(3)])
	}
	if g.rng.IntN(3) == 0 {
		in.ApprovalID = pick(g.approvals)
	}
	if g.rng.IntN(2) == 0 {
		// Call counts, as the sidecar would pass them: for every key the
		// agent might use, some number.
		in.Calls = map[string]int{}
		for _, key := range g.keysOf(in.AgentID) {
			in.Calls[key] = g.rng.IntN(6)
		}
	}
	return in
}

// keysOf lists the rate-limit keys an agent's permissions may have.
func (g *world) keysOf(agentID string) []string {
	a, err := g.st.GetAgent(context.Background(), agentID)
	if err != nil {
		return nil
	}
	var keys []string
	for _, p := range a.Permissions {
		keys = append(keys, engine.PermissionKey(p.Resource, p.Actions))
	}
	for _, id := range a.Incoming {
		d, err := g.st.GetDelegation(context.Background(), id)
		if err != nil {
			continue
		}
		for _, gr := range d.Permissions {
			keys = append(keys, engine.PermissionKey(gr.Resource, gr.Actions), gr.CoveredBy)
			for _, in := range gr.Inherited {
				keys = append(keys, in.Key)
			}
		}
	}
	return keys
}

// startOPA runs stock OPA, built from the version in go.mod, as a server
// loading the bundle.
func startOPA(t *testing.T, dir, bundlePath string) string {
	t.Helper()
	opa := filepath.Join(dir, "opa")
	build := exec.Command("go", "build", "-o", opa, "github.com/open-policy-agent/opa")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build opa: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(opa, "run", "--server", "--addr", addr, "--disable-telemetry", "--log-level", "error", "--bundle", bundlePath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + "/health?bundles=true")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("opa did not become healthy: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// codeOf is a decision document's code.
func codeOf(doc any) string {
	m, _ := doc.(map[string]any)
	return fmt.Sprint(m["code"])
}

// queryOPA asks stock OPA for data.kavach.authz.<rule> (decision or
// explanation).
func queryOPA(t *testing.T, url, rule string, input any) any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"input": input})
	resp, err := http.Post(url+"/v1/data/kavach/authz/"+rule, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Result any `json:"result"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("opa answered %d: %s", resp.StatusCode, b)
	}
	return out.Result
}

// sameJSON compares two documents as JSON values.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	norm := func(v any) any {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		_ = json.Unmarshal(raw, &out)
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}
