package loadgen

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
