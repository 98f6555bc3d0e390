//go:build unix

package sidecar_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service"
	evts "github.com/kavach-dev/kavach/service/events"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/store"
	"github.com/kavach-dev/kavach/telemetry"
)

// costSide is one side of a cost comparison: a handler, the key and body
// of its decisions, and settle, which waits for the work a side does
// after answering n more decisions (their deliveries) to be done.
type costSide struct {
	h      http.Handler
	key    string
	body   string
	settle func(n int)
}

// costChunk is how many decisions a side makes before the other's turn.
const costChunk = 400

// alternate makes b.N decisions on each side, in chunks of costChunk taken
// in turn (off, on, on, off, …), each from 16 concurrent callers, and
// reports each side's process CPU time per decision and their ratio
// (on/off): the two sides meet the same machine, chunk by chunk, so the
// ratio holds in one run what a busy machine's swings would blur between
// two. The clock counts every goroutine of the process (the group commit,
// the span processor, the deliveries, and the receiver's, which a real
// receiver spends elsewhere).
func alternate(b *testing.B, off, on costSide) {
	b.Helper()
	b.ReportAllocs()
	sides := [2]costSide{off, on}
	var cpu [2]int64
	b.ResetTimer()
	for done, turn := 0, 0; done < b.N; turn++ {
		n := min(costChunk, b.N-done)
		for k := range 2 {
			i := k ^ (turn & 1) // off first, then on first, in turn
			s := sides[i]
			start := cpuTime()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for next.Add(1) <= int64(n) {
						if rec := tracedAuthorize(s.h, s.key, s.body); rec.Code != http.StatusOK {
							b.Errorf("authorize = %d %s", rec.Code, rec.Body)
							return
						}
					}
				})
			}
			wg.Wait()
			if s.settle != nil {
				s.settle(n)
			}
			cpu[i] += cpuTime() - start
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu[0])/float64(b.N), "off-cpu-ns/op")
	b.ReportMetric(float64(cpu[1])/float64(b.N), "on-cpu-ns/op")
	b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "on/off")
}

// What tracing every request costs in CPU per decision, off against on in
// one run (alternate): tracing built as kavach serve builds it
// (telemetry.New: every request sampled, spans sent over OTLP/HTTP to a
// receiver in this process, each chunk's spans within its turn). on/off is the figure: 1.05 is 5% more CPU per
// decision. ns/op counts both sides' decisions.
//
//	go test ./sidecar -run X -bench TracingCost -count 6
func BenchmarkTracingCost(b *testing.B) {
	svc, k, body := benchDecider(b)
	receiver := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(receiver.Close) // after the last export, at tr's Shutdown
	one := 1.0
	tr, err := telemetry.New(b.Context(), telemetry.Options{Endpoint: receiver.URL, SampleRatio: &one, Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	alternate(b,
		costSide{h: newServer(b, svc, sidecar.Options{}).Traced(), key: k.Key, body: body},
		costSide{h: newServer(b, svc, sidecar.Options{Tracer: tr.Provider()}).Traced(), key: k.Key, body: body,
			// The chunk's spans exported within its turn.
			settle: func(int) { _ = tr.ForceFlush(b.Context()) }})
}

// What a webhook on authorize.denied costs in CPU per decision, every
// decision denied (the worst case: one event each), off (no subscription)
// against on (one, delivering every event, signed, to a receiver in this
// process), in one run (alternate); each chunk on the webhook's side ends
// once its events are delivered.
//
//	go test ./sidecar -run X -bench WebhookCost -count 6
func BenchmarkWebhookCost(b *testing.B) {
	var delivered atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		delivered.Add(1)
	}))
	defer receiver.Close()
	side := func(on bool) costSide {
		so, eo := store.Options{URL: filepath.Join(b.TempDir(), "kavach.db"), Now: time.Now}, evts.Options{}
		if on {
			types := []string{domain.EventAuthorizeDenied}
			so.Subscriptions = []store.Subscription{{Endpoint: "wh_bench", Types: types}}
			eo.Endpoints = []evts.Endpoint{{ID: "wh_bench", URL: receiver.URL, Events: types, Keys: [][]byte{[]byte("0123456789abcdef01234567")}}}
		}
		svc, _, _ := newServiceWith(b, so, service.Options{Now: time.Now, Events: eo})
		ctx, cancel := context.WithCancel(b.Context())
		var wg sync.WaitGroup
		wg.Go(func() { svc.Run(ctx) })
		b.Cleanup(func() { cancel(); wg.Wait() })
		a, err := svc.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("docs:*", "read")}})
		if err != nil {
			b.Fatal(err)
		}
		k, err := svc.CreateKey(ctx, api.CreateKeyRequest{Name: "app", Roles: []string{"decider"}})
		if err != nil {
			b.Fatal(err)
		}
		s := costSide{h: newServer(b, svc, sidecar.Options{}).Traced(), key: k.Key,
			body: `{"agentId":"` + a.ID + `","action":"write","resource":"docs:x"}`}
		if on {
			var sent int64
			s.settle = func(n int) {
				sent += int64(n)
				for delivered.Load() < sent {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
		return s
	}
	alternate(b, side(false), side(true))
}
