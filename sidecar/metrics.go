package sidecar

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
)

// histogram is a Prometheus histogram with fixed buckets, lock-free.
type histogram struct {
	bounds   []float64
	counts   []atomic.Uint64
	overflow atomic.Uint64 // above the last bound
	sumUS    atomic.Uint64 // sum in microseconds
}

func newHistogram(bounds ...float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds))}
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	h.sumUS.Add(uint64(d.Microseconds())) //nolint:gosec // G115: d is an elapsed time, never negative
	for i, b := range h.bounds {
		if s <= b {
			h.counts[i].Add(1)
			return
		}
	}
	h.overflow.Add(1)
}

// write prints the histogram in the Prometheus text format (cumulative buckets).
func (h *histogram) write(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	// +Inf and _count derive from the buckets read, so a scrape during
	// an observation stays monotonic.
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{le=\"%s\"} %d\n", name, strconv.FormatFloat(b, 'g', -1, 64), cum)
	}
	total := cum + h.overflow.Load()
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, total, name, float64(h.sumUS.Load())/1e6, name, total)
}

// metrics are the sidecar's own counters; the store and service report theirs.
type metrics struct {
	authorize *histogram
	allowed   atomic.Uint64
	denied    atomic.Uint64
	refusals  refusalCounts
}

func newMetrics() *metrics {
	return &metrics{authorize: newHistogram(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)}
}

func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m := s.m
	fmt.Fprintf(w, "# HELP kavach_decisions_total Authorization decisions, by result.\n# TYPE kavach_decisions_total counter\n")
	fmt.Fprintf(w, "kavach_decisions_total{result=\"allowed\"} %d\nkavach_decisions_total{result=\"denied\"} %d\n", m.allowed.Load(), m.denied.Load())
	m.authorize.write(w, "kavach_authorize_duration_seconds", "Time to answer POST /v1/authorize, audit commit included.")
	if cpu, ok := processCPUSeconds(); ok {
		// The name Prometheus's process collector uses, so dashboards built
		// for it read it as they read any Go service's.
		fmt.Fprintf(w, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", cpu)
	}
	fmt.Fprintf(w, "# HELP kavach_api_refused_total API calls refused for their credential (401) or its role (403), by status and code.\n# TYPE kavach_api_refused_total counter\n")
	m.refusals.mu.Lock()
	keys := make([][2]string, 0, len(m.refusals.n))
	for k := range m.refusals.n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		fmt.Fprintf(w, "kavach_api_refused_total{status=%q,code=%q} %d\n", k[0], k[1], m.refusals.n[k])
	}
	m.refusals.mu.Unlock()

	a := s.svc.AuditStats()
	mode := "sync"
	if a.Async {
		mode = "async"
	}
	fmt.Fprintf(w, "# HELP kavach_audit_rows_total Audit rows committed through group commit.\n# TYPE kavach_audit_rows_total counter\nkavach_audit_rows_total %d\n", a.Rows)
	fmt.Fprintf(w, "# HELP kavach_audit_batches_total Group-commit transactions.\n# TYPE kavach_audit_batches_total counter\nkavach_audit_batches_total %d\n", a.Batches)
	fmt.Fprintf(w, "# HELP kavach_audit_failures_total Audit rows that failed to commit (their decisions were not given, unless async).\n# TYPE kavach_audit_failures_total counter\nkavach_audit_failures_total %d\n", a.Failures)
	fmt.Fprintf(w, "# HELP kavach_audit_queue_length Audit rows waiting for the writer.\n# TYPE kavach_audit_queue_length gauge\nkavach_audit_queue_length %d\n", a.Queued)
	fmt.Fprintf(w, "# HELP kavach_audit_mode 1 for the audit mode in use.\n# TYPE kavach_audit_mode gauge\nkavach_audit_mode{mode=%q} 1\n", mode)
	fmt.Fprintf(w, "# HELP kavach_audit_batch_size Rows per group-commit transaction.\n# TYPE kavach_audit_batch_size histogram\n")
	var cum uint64
	for i, b := range a.BucketBounds {
		cum += a.SizeBuckets[i]
		fmt.Fprintf(w, "kavach_audit_batch_size_bucket{le=\"%d\"} %d\n", b, cum)
	}
	fmt.Fprintf(w, "kavach_audit_batch_size_bucket{le=\"+Inf\"} %d\nkavach_audit_batch_size_sum %d\nkavach_audit_batch_size_count %d\n", a.Batches, a.SizeSum, a.Batches)

	ready, writable := 0, 0
	if s.svc.Readiness() == nil {
		ready = 1
	}
	if s.svc.Health().Database == "ok" {
		writable = 1
	}
	fmt.Fprintf(w, "# HELP kavach_ready 1 once the policy data store is ready, while database writes succeed (GET /ready).\n# TYPE kavach_ready gauge\nkavach_ready %d\n", ready)
	fmt.Fprintf(w, "# HELP kavach_database_writable 1 while writes to the database succeed.\n# TYPE kavach_database_writable gauge\nkavach_database_writable %d\n", writable)
	detected := s.svc.Detected()
	fmt.Fprintf(w, "# HELP kavach_anomalies_total Anomalies this replica detected and stored, by type.\n# TYPE kavach_anomalies_total counter\n")
	for _, t := range sortedKeys(detected) {
		fmt.Fprintf(w, "kavach_anomalies_total{type=%q} %d\n", t, detected[t])
	}
	levels := s.svc.AgentsByTrustLevel()
	fmt.Fprintf(w, "# HELP kavach_agents_by_trust_level Agents not revoked, by the trust level the policy sees (counted every 30s).\n# TYPE kavach_agents_by_trust_level gauge\n")
	for _, l := range sortedKeys(levels) {
		fmt.Fprintf(w, "kavach_agents_by_trust_level{level=%q} %d\n", l, levels[l])
	}
	wh := s.svc.WebhookStats()
	fmt.Fprintf(w, "# HELP kavach_webhook_attempts_total Webhook delivery attempts this replica made, by endpoint and outcome (delivered; retried: failed, will retry; failed: given up).\n# TYPE kavach_webhook_attempts_total counter\n")
	for _, ep := range sortedKeys(wh.Attempts) {
		for _, outcome := range []string{"delivered", "retried", "failed"} {
			fmt.Fprintf(w, "kavach_webhook_attempts_total{endpoint=%q,outcome=%q} %d\n", ep, outcome, wh.Attempts[ep][outcome])
		}
	}
	fmt.Fprintf(w, "# HELP kavach_webhook_deliveries_pending Webhook deliveries pending in the database (all replicas'), counted every 10s.\n# TYPE kavach_webhook_deliveries_pending gauge\nkavach_webhook_deliveries_pending %d\n", wh.Pending)
	fmt.Fprintf(w, "# HELP kavach_webhook_oldest_pending_seconds Age of the oldest pending webhook delivery (0: none pending).\n# TYPE kavach_webhook_oldest_pending_seconds gauge\nkavach_webhook_oldest_pending_seconds %g\n", wh.OldestPending.Seconds())
	if c, ok := s.svc.DataCache(); ok {
		fmt.Fprintf(w, "# HELP kavach_policy_data_reads_total Policy data documents (agents, tokens, delegations, approvals) decisions read, by where from: memory, or the database on a miss (policies.cachedAgents).\n# TYPE kavach_policy_data_reads_total counter\n")
		fmt.Fprintf(w, "kavach_policy_data_reads_total{from=\"memory\"} %d\nkavach_policy_data_reads_total{from=\"database\"} %d\n", c.Hits, c.Misses)
		fmt.Fprintf(w, "# HELP kavach_policy_data_read_errors_total Database reads of policy data that failed (the decision failed with them).\n# TYPE kavach_policy_data_read_errors_total counter\nkavach_policy_data_read_errors_total %d\n", c.Errors)
		fmt.Fprintf(w, "# HELP kavach_policy_data_entries Policy data documents held in memory, known absences included.\n# TYPE kavach_policy_data_entries gauge\nkavach_policy_data_entries %d\n", c.Entries)
		fmt.Fprintf(w, "# HELP kavach_policy_data_capacity Documents of each kind memory may hold (policies.cachedAgents).\n# TYPE kavach_policy_data_capacity gauge\nkavach_policy_data_capacity %d\n", c.Capacity)
	}
	sync := s.svc.Sync()
	fmt.Fprintf(w, "# HELP kavach_sync_applied_seq Last change-feed sequence applied.\n# TYPE kavach_sync_applied_seq gauge\nkavach_sync_applied_seq %d\n", sync.AppliedSeq)
	fmt.Fprintf(w, "# HELP kavach_sync_lag Changes read from the feed and not yet applied.\n# TYPE kavach_sync_lag gauge\nkavach_sync_lag %d\n", sync.Lag)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
