package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunMeasuresAndChecksAnswers(t *testing.T) {
	floor := httptest.NewServer(FloorHandler())
	defer floor.Close()
	// A fake sidecar that denies writes: answers are checked against the mix.
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Action string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		_ = json.NewEncoder(w).Encode(map[string]any{"allowed": body.Action != "write"})
	}))
	defer fake.Close()
	mix := []Request{{AgentID: "a", Action: "read", Resource: "x", Allowed: true}, {AgentID: "a", Action: "write", Resource: "x", Allowed: false}}
	opts := Options{Concurrency: 4, Duration: 200 * time.Millisecond}
	for _, tgt := range []Target{{Name: "floor", Kind: Floor, URL: floor.URL}, {Name: "fake", Kind: Sidecar, URL: fake.URL}} {
		r, err := Run(t.Context(), tgt, mix, opts)
		if err != nil || r.Requests == 0 || r.Errors != 0 || r.Throughput <= 0 || r.P50 <= 0 || r.Max < r.P99 || r.P99 < r.P50 {
			t.Errorf("Run(%s) = %+v, %v", tgt.Name, r, err)
		}
	}
	// Wrong answers count as errors.
	wrong := []Request{{AgentID: "a", Action: "write", Resource: "x", Allowed: true}}
	r, err := Run(t.Context(), Target{Name: "fake", Kind: Sidecar, URL: fake.URL}, wrong, opts)
	if err != nil || r.Requests != 0 || r.Errors == 0 {
		t.Errorf("a wrong decision was not counted as an error: %+v, %v", r, err)
	}
	if out := Format([]Result{{Target: Target{Name: "x"}, Throughput: 10, P99: time.Millisecond}}); out == "" {
		t.Error("empty table")
	}
}

// A target that counts reports its CPU per decision over the measured
// phase, and the table gains the column and its ratio; one that does not
// shows a dash.
func TestRunReportsCPUPerDecision(t *testing.T) {
	floor := httptest.NewServer(FloorHandler())
	defer floor.Close()
	var calls atomic.Int64
	counted := Target{Name: "counted", Kind: Floor, URL: floor.URL, Sample: func(context.Context) (Sample, error) {
		// 100 decisions and 5 ms of CPU more at every reading: 50 µs each.
		n := float64(calls.Add(1))
		return Sample{CPUSeconds: n * 0.005, Decisions: n * 100}, nil
	}}
	mix := []Request{{AgentID: "a", Action: "read", Resource: "x", Allowed: true}}
	opts := Options{Concurrency: 2, Duration: 50 * time.Millisecond}
	r, err := Run(t.Context(), counted, mix, opts)
	if err != nil || r.CPUPerDecision != 50*time.Microsecond || calls.Load() != 2 {
		t.Fatalf("Run = %+v, %v (%d readings); want 50µs from two readings", r, err, calls.Load())
	}
	plain, err := Run(t.Context(), Target{Name: "plain", Kind: Floor, URL: floor.URL}, mix, opts)
	if err != nil || plain.CPUPerDecision != 0 {
		t.Fatalf("a target without Sample = %+v, %v", plain, err)
	}
	double := r
	double.Target.Name, double.CPUPerDecision = "double", 100*time.Microsecond
	out := Format([]Result{r, plain, double})
	for _, want := range []string{"cpu/decision", "cpu ratio", "50µs", "100µs", "2.00"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^plain .* -\s+-$`).MatchString(out) {
		t.Errorf("a target without CPU figures shows no dashes:\n%s", out)
	}
}

// Rounds rotate the targets' order, and combine into medians; the ratios
// are taken within each round.
func TestRounds(t *testing.T) {
	t.Parallel()
	if got := Order(3, 0); got[0] != 0 || got[1] != 1 || got[2] != 2 {
		t.Errorf("Order(3, 0) = %v", got)
	}
	if got := Order(3, 4); got[0] != 1 || got[1] != 2 || got[2] != 0 {
		t.Errorf("Order(3, 4) = %v; want [1 2 0]", got)
	}
	res := func(name string, tp float64, cpu time.Duration) Result {
		return Result{Target: Target{Name: name}, Requests: 10, Throughput: tp, P99: time.Millisecond, CPUPerDecision: cpu}
	}
	rounds := [][]Result{
		{res("plain", 100, 200*time.Microsecond), res("hooks", 90, 220*time.Microsecond)},
		{res("plain", 200, 100*time.Microsecond), res("hooks", 190, 110*time.Microsecond)},
		{res("plain", 50, 400*time.Microsecond), res("hooks", 49, 404*time.Microsecond)},
	}
	c := Combine(rounds)
	if c[1].Requests != 30 || c[1].Throughput != 90 || c[1].CPUPerDecision != 220*time.Microsecond || c[0].Throughput != 100 {
		t.Errorf("Combine = %+v", c)
	}
	out := FormatRounds(rounds, false)
	if !strings.Contains(out, "req/s ratio 0.90 0.95 0.98 (median 0.95, quartiles 0.93–0.96)") ||
		!strings.Contains(out, "cpu ratio 1.10 1.10 1.01 (median 1.10, quartiles 1.06–1.10)") || !strings.Contains(out, "rotating order") {
		t.Errorf("FormatRounds =\n%s", out)
	}
	if !strings.Contains(FormatRounds(rounds, true), "targets driven together") {
		t.Error("FormatRounds does not say the targets were driven together")
	}
	if FormatRounds(rounds[:1], false) != "" {
		t.Error("one round printed round-by-round ratios")
	}
}

// The durable floor answers a request only once its row is in the file,
// and group-commits: every request's row is there, whole, after the run.
func TestDurableFloorWritesEveryRow(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp(t.TempDir(), "floor")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	srv := httptest.NewServer(DurableFloorHandler(t.Context(), f))
	defer srv.Close()
	mix := []Request{{AgentID: "a", Action: "read", Resource: "x", Allowed: true}}
	r, err := Run(t.Context(), Target{Name: "durable floor", Kind: Floor, URL: srv.URL}, mix, Options{Concurrency: 8, Duration: 300 * time.Millisecond})
	if err != nil || r.Requests == 0 || r.Errors != 0 {
		t.Fatalf("Run = %+v, %v", r, err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	// Every answered request has its row (warm-up requests too: at least
	// as many rows as requests counted).
	if len(lines) < r.Requests {
		t.Errorf("%d rows for %d answered requests", len(lines), r.Requests)
	}
	for _, l := range lines {
		if !regexp.MustCompile(`^\d+ \{.*"agentId":"a".*\}$`).MatchString(l) {
			t.Fatalf("row %q is not a time and the request body", l)
		}
	}
}

// A floor wrapped by Sampled counts what it answered and reports it with
// its CPU time, which FloorSample reads back.
func TestFloorSample(t *testing.T) {
	floor := httptest.NewServer(Sampled(FloorHandler()))
	defer floor.Close()
	read := FloorSample(floor.URL)
	before, err := read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		resp, err := http.Post(floor.URL+"/", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	after, err := read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Decisions - before.Decisions; got != 3 {
		t.Errorf("counted %v requests, want 3", got)
	}
	if after.CPUSeconds < before.CPUSeconds {
		t.Errorf("CPU time went back: %v, then %v", before.CPUSeconds, after.CPUSeconds)
	}
}
