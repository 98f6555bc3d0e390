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
)

// What a webhook on authorize.denied costs in CPU per decision: the
// guarded POST /v1/authorize from 16 concurrent callers, every decision
// denied (the worst case: one event per decision), without a subscription
// (off) and with one (on) delivering each event, signed, to a receiver in
// this process. The clock stops once every event has been delivered, so
// cpu-ns/op holds the delivery too, and the receiver's own CPU (which a
// real receiver spends elsewhere). Compare off and on from one run, several
// times (-count).
//
//	go test ./sidecar -run X -bench WebhookCPU -benchmem -count 6
func BenchmarkWebhookCPU(b *testing.B) {
	var delivered atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		delivered.Add(1)
	}))
	defer receiver.Close()
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "off", true: "on"}[on]
		b.Run(name, func(b *testing.B) {
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
			defer func() { cancel(); wg.Wait() }()
			a, err := svc.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("docs:*", "read")}})
			if err != nil {
				b.Fatal(err)
			}
			k, err := svc.CreateKey(ctx, api.CreateKeyRequest{Name: "app", Roles: []string{"decider"}})
			if err != nil {
				b.Fatal(err)
			}
			body := `{"agentId":"` + a.ID + `","action":"write","resource":"docs:x"}`
			h := newServer(b, svc, sidecar.Options{}).Traced()
			b.ReportAllocs()
			b.SetParallelism(8) // 16 callers on 2 cores
			from := delivered.Load()
			b.ResetTimer()
			start := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if rec := tracedAuthorize(h, k.Key, body); rec.Code != http.StatusOK {
						b.Errorf("authorize = %d %s", rec.Code, rec.Body)
						return
					}
				}
			})
			for on && delivered.Load()-from < int64(b.N) {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
