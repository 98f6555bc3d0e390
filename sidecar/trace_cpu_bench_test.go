//go:build unix

package sidecar_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"

	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/telemetry"
)

// cpuTime is the process's CPU time so far (user and system), in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// What tracing costs in CPU per decision, as a sidecar pays it: the guarded
// POST /v1/authorize from 16 concurrent callers (so the audit rows are
// group-committed as under load), off against on with tracing built as
// kavach serve builds it (telemetry.New: every request sampled, the batch
// span processor, spans sent over OTLP/HTTP to a receiver in this process
// that discards them). cpu-ns/op is the whole process's CPU time (every
// goroutine: the batcher, the span processor, the receiver) per decision.
// The machine's other work shows in it: compare off and on from one run,
// several times (-count).
//
//	go test ./sidecar -run X -bench TracingCPU -benchmem -count 6
func BenchmarkTracingCPU(b *testing.B) {
	svc, k, body := benchDecider(b)
	ctx := b.Context()
	receiver := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer receiver.Close()
	one := 1.0
	tr, err := telemetry.New(ctx, telemetry.Options{Endpoint: receiver.URL, SampleRatio: &one, Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	for _, tc := range []struct {
		name string
		opts sidecar.Options
	}{{"off", sidecar.Options{}}, {"on", sidecar.Options{Tracer: tr.Provider()}}} {
		h := newServer(b, svc, tc.opts).Traced()
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8) // 16 callers on 2 cores
			start := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if rec := tracedAuthorize(h, k.Key, body); rec.Code != http.StatusOK {
						b.Errorf("authorize = %d %s", rec.Code, rec.Body)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
