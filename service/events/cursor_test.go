package events

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/store"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A replica that dies after its POSTs and before its cursor moved leaves
// the events to the next holder of the cursor, once its lease has run out:
// they are sent again under the same webhook-ids, and the dead holder's
// late write is refused. A first attempt that fails leaves a retry; 410
// leaves a failed delivery.
func TestCursorCrashBetweenPostAndAdvanceResendsUnderTheSameIDs(t *testing.T) {
	ctx := t.Context()
	clk := &testClock{t: time.Now()}
	st, err := store.Open(ctx, store.Options{URL: filepath.Join(t.TempDir(), "kavach.db"), Now: clk.Now,
		Subscriptions: []store.Subscription{{Endpoint: "wh_t", Types: []string{domain.EventAuthorizeDenied}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var mu sync.Mutex
	var ids []string
	status := http.StatusNoContent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		code := status
		mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	deny := func() {
		t.Helper()
		if _, err := st.InsertAudit(ctx, domain.AuditEntry{AgentID: "agt_x", Action: "write", Resource: "r",
			Result: domain.ResultDenied, Code: "no_permission", Reason: "r"}, store.Consumption{}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		deny()
	}
	opts := Options{Endpoints: []Endpoint{{ID: "wh_t", URL: srv.URL, Events: []string{domain.EventAuthorizeDenied}}},
		Retention: 7 * 24 * time.Hour}
	log := slog.New(slog.DiscardHandler)
	a, b := New(st, opts, clk.Now, log), New(st, opts, clk.Now, log)
	fa, fb := &follower{e: a, ep: a.endpoints["wh_t"]}, &follower{e: b, ep: b.endpoints["wh_t"]}

	// a sends the three and, within its second, has not written its cursor
	// yet when it dies.
	if _, err := fa.pass(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := st.GetCursor(ctx, "wh_t")
	if err != nil || c.Seq != 0 || c.LeaseOwner != a.owner || len(ids) != 3 {
		t.Fatalf("after a's pass: cursor %+v, %v, %d sent; want at 0, leased to a, 3 sent", c, err, len(ids))
	}
	// b waits out a's lease, then sends them again.
	if _, err := fb.pass(ctx); err != nil || len(ids) != 3 {
		t.Fatalf("b's pass under a's live lease: %v, %d sent; want none sent", err, len(ids))
	}
	clk.Add(cursorLease + time.Second)
	if _, err := fb.pass(ctx); err != nil {
		t.Fatal(err)
	}
	fb.stop(ctx)
	if len(ids) != 6 {
		t.Fatalf("webhook-ids sent %v; want the three, then the same three again", ids)
	}
	first := map[string]bool{ids[0]: true, ids[1]: true, ids[2]: true}
	for _, id := range ids[3:] {
		if !first[id] {
			t.Errorf("b sent %s, an id a did not send: %v", id, ids)
		}
	}
	if err := fa.save(ctx); err != nil || fa.held {
		t.Errorf("a's late save: %v, held %v; want refused", err, fa.held)
	}
	c, _ = st.GetCursor(ctx, "wh_t")
	if latest, _ := st.LatestEvent(ctx); c.Seq != latest || c.LeaseOwner != b.owner {
		t.Errorf("cursor %+v; want at %d, b's", c, latest)
	}

	// A failed first attempt leaves a retry; 410 a failed delivery.
	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	deny()
	clk.Add(time.Second)
	if _, err := fb.pass(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	status = http.StatusGone
	mu.Unlock()
	deny()
	clk.Add(time.Second)
	if _, err := fb.pass(ctx); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 8 {
		t.Fatalf("%d sent; want 8", len(ids))
	}
	pending, _, _ := st.ListDeliveries(ctx, store.DeliveryFilter{State: domain.DeliveryPending}, store.Page{Limit: 10})
	failed, _, _ := st.ListDeliveries(ctx, store.DeliveryFilter{State: domain.DeliveryFailed}, store.Page{Limit: 10})
	if len(pending) != 1 || pending[0].Attempts != 1 || pending[0].LastStatus != 503 || pending[0].Event.ID != ids[6] ||
		len(failed) != 1 || failed[0].LastStatus != 410 || failed[0].Event.ID != ids[7] {
		t.Errorf("pending %+v, failed %+v; want the 503 retrying and the 410 given up", pending, failed)
	}
}
