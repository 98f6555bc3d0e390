package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
