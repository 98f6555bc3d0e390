// Package loadgen drives HTTP authorization endpoints (the Kavach sidecar,
// stock OPA serving a Kavach bundle, a floor server) with the same request
// mix at a fixed concurrency for a fixed time, and reports throughput and
// latency percentiles, so they can be compared side by side in one run.
package loadgen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one call of the mix, in terms of the sidecar's API.
type Request struct {
	AgentID  string
	Token    string
	Action   string
	Resource string
	// Allowed is the decision the request must get (checked on every answer).
	Allowed bool
}

// Kind selects how a target is called.
type Kind string

// Target kinds.
const (
	Sidecar Kind = "sidecar" // POST /v1/authorize
	OPA     Kind = "opa"     // POST /v1/data/kavach/authz/decision
	Floor   Kind = "floor"   // POST /, fixed answer
)

// Target is an endpoint under test. Key is a sidecar's API key (role
// decider), sent with the requests by agent ID; requests by token carry
// the agent's own token instead.
type Target struct {
	Name string
	Kind Kind
	URL  string
	Key  string
	// Sample, when set, reads the target's own counters (a sidecar's
	// /metrics): Run reads them around the measured phase and reports the
	// target's CPU per decision, a figure that a busy machine's noise
	// moves far less than throughput.
	Sample func(context.Context) (Sample, error)
}

// Sample is what a target counted so far: its process's CPU time and the
// decisions it made.
type Sample struct {
	CPUSeconds float64
	Decisions  float64
}

// Result is one target's figures.
type Result struct {
	Target     Target
	Requests   int
	Errors     int
	Duration   time.Duration
	Throughput float64
	P50, P90   time.Duration
	P99, Max   time.Duration
	// CPUPerDecision is the target's CPU time over the measured phase
	// divided by the decisions it made meanwhile; 0 when unknown.
	CPUPerDecision time.Duration
}

// Options configures a run.
type Options struct {
	Concurrency int
	Duration    time.Duration
	Warmup      time.Duration
}

type prepared struct {
	body    []byte
	bearer  string
	allowed bool
}

// Run drives one target with the mix and measures it.
func Run(ctx context.Context, t Target, mix []Request, opts Options) (Result, error) {
	if len(mix) == 0 {
		return Result{}, fmt.Errorf("empty request mix")
	}
	reqs := make([]prepared, len(mix))
	for i, r := range mix {
		p, err := prepare(t, r)
		if err != nil {
			return Result{}, err
		}
		reqs[i] = p
	}
	path := map[Kind]string{Sidecar: "/v1/authorize", OPA: "/v1/data/kavach/authz/decision", Floor: "/"}[t.Kind]
	tr := &http.Transport{MaxIdleConns: opts.Concurrency * 2, MaxIdleConnsPerHost: opts.Concurrency * 2, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := t.URL + path

	phase := func(d time.Duration, record bool) ([][]time.Duration, int64, time.Duration) {
		var errs atomic.Int64
		lat := make([][]time.Duration, opts.Concurrency)
		deadline := time.Now().Add(d)
		start := time.Now()
		var wg sync.WaitGroup
		for w := range opts.Concurrency {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 7)) //nolint:gosec // G404: a seeded, reproducible request mix for load generation, not security
				local := make([]time.Duration, 0, 1<<14)
				for time.Now().Before(deadline) && ctx.Err() == nil {
					p := reqs[rng.IntN(len(reqs))]
					t0 := time.Now()
					ok := call(ctx, hc, url, t.Kind, p)
					el := time.Since(t0)
					if !ok {
						errs.Add(1)
						continue
					}
					if record {
						local = append(local, el)
					}
				}
				lat[w] = local
			})
		}
		wg.Wait()
		return lat, errs.Load(), time.Since(start)
	}
	if opts.Warmup > 0 {
		phase(opts.Warmup, false)
	}
	before, sampled := sample(ctx, t)
	lat, errs, took := phase(opts.Duration, true)
	var cpu time.Duration
	if after, ok := sample(ctx, t); ok && sampled && after.Decisions > before.Decisions {
		cpu = time.Duration((after.CPUSeconds - before.CPUSeconds) / (after.Decisions - before.Decisions) * float64(time.Second))
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	res := Result{Target: t, Requests: len(all), Errors: int(errs), Duration: took, CPUPerDecision: cpu}
	if len(all) > 0 {
		pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
		res.P50, res.P90, res.P99, res.Max = pct(0.50), pct(0.90), pct(0.99), all[len(all)-1]
		res.Throughput = float64(len(all)) / took.Seconds()
	}
	return res, nil
}

func prepare(t Target, r Request) (prepared, error) {
	p := prepared{allowed: r.Allowed}
	var err error
	switch kind := t.Kind; kind {
	case Sidecar:
		body := map[string]string{"action": r.Action, "resource": r.Resource}
		if r.Token != "" {
			p.bearer = r.Token
		} else {
			body["agentId"] = r.AgentID
			p.bearer = t.Key
		}
		p.body, err = json.Marshal(body)
	case OPA:
		// The input the sidecar itself evaluates; "now" is left out, so OPA
		// uses its evaluation time, as the sidecar uses its clock.
		in := map[string]any{"action": r.Action, "resource": r.Resource}
		if r.Token != "" {
			sum := sha256.Sum256([]byte(r.Token))
			in["tokenHash"] = hex.EncodeToString(sum[:])
		} else {
			in["agentId"] = r.AgentID
		}
		p.body, err = json.Marshal(map[string]any{"input": in})
	case Floor:
		// The sidecar's request body, so that a floor reads (and a durable
		// floor writes) as much as the sidecar does.
		p.body, err = json.Marshal(map[string]string{"agentId": r.AgentID, "action": r.Action, "resource": r.Resource})
	default:
		return p, fmt.Errorf("unknown target kind %q", t.Kind)
	}
	return p, err
}

// call makes one request and checks the answer carries the expected decision.
func call(ctx context.Context, hc *http.Client, url string, kind Kind, p prepared) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(p.body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	if p.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+p.bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return false
	}
	switch kind {
	case Sidecar:
		var d struct{ Allowed bool }
		return json.Unmarshal(b, &d) == nil && d.Allowed == p.allowed
	case OPA:
		var d struct{ Result struct{ Allowed bool } }
		return json.Unmarshal(b, &d) == nil && d.Result.Allowed == p.allowed
	}
	return true
}

// sample reads t's counters, if it has any.
func sample(ctx context.Context, t Target) (Sample, bool) {
	if t.Sample == nil {
		return Sample{}, false
	}
	s, err := t.Sample(ctx)
	return s, err == nil
}

// FloorHandler answers every request with a fixed decision: the least any
// HTTP authorization sidecar can cost on this machine.
func FloorHandler() http.Handler {
	body := []byte(`{"allowed":true,"code":"allowed","reason":"floor","auditId":"aud_floor"}` + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// Format renders results as a table with ratios to the first target; with
// CPU per decision (and its ratio) when some target reported it.
func Format(results []Result) string {
	var b bytes.Buffer
	cpu := slices.ContainsFunc(results, func(r Result) bool { return r.CPUPerDecision > 0 })
	fmt.Fprintf(&b, "%-22s %9s %7s %11s %9s %9s %9s %9s %13s %10s", "target", "requests", "errors", "req/s", "p50", "p90", "p99", "max", "req/s ratio", "p99 ratio")
	if cpu {
		fmt.Fprintf(&b, " %13s %10s", "cpu/decision", "cpu ratio")
	}
	b.WriteString("\n")
	base := results[0]
	for _, r := range results {
		ratio, p99 := 0.0, 0.0
		if base.Throughput > 0 {
			ratio = r.Throughput / base.Throughput
		}
		if base.P99 > 0 {
			p99 = float64(r.P99) / float64(base.P99)
		}
		fmt.Fprintf(&b, "%-22s %9d %7d %11.0f %9s %9s %9s %9s %13.2f %10.2f", r.Target.Name, r.Requests, r.Errors, r.Throughput,
			round(r.P50), round(r.P90), round(r.P99), round(r.Max), ratio, p99)
		if cpu {
			switch {
			case r.CPUPerDecision <= 0:
				fmt.Fprintf(&b, " %13s %10s", "-", "-")
			case base.CPUPerDecision <= 0:
				fmt.Fprintf(&b, " %13s %10s", round(r.CPUPerDecision), "-")
			default:
				fmt.Fprintf(&b, " %13s %10.2f", round(r.CPUPerDecision), float64(r.CPUPerDecision)/float64(base.CPUPerDecision))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func round(d time.Duration) time.Duration {
	switch {
	case d > 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
