package tests

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/internal/mysqltest"
	"github.com/kavach-dev/kavach/internal/pgtest"
	"github.com/kavach-dev/kavach/store"
)

// SIGKILL in the middle of a load: every decision a client received has
// its audit row, because a decision is answered only after its row commits.
func TestNoAuditRowLostOnSIGKILL(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "kavach.db")
			switch name {
			case "postgres":
				db = pgtest.URL(t)
			case "mysql":
				db = mysqltest.URL(t)
			}
			s := start(t, "--database", db)
			cl := s.adminClient()
			a := mustCreate(t, cl, perm("api:*", "call"))

			// The kill comes once the load is under way: every worker has
			// had an answer and loadedAt decisions have been answered.
			const workers, loadedAt = 16, 1000
			var mu sync.Mutex
			var received []string
			answering := 0 // workers that have had an answer
			isLoaded, loaded := false, make(chan struct{})
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					hc := &http.Client{Timeout: 5 * time.Second}
					c := client.NewWithHTTP(s.URL, hc).WithAPIKey(adminKey)
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						res, err := c.Authorize(context.Background(), api.AuthorizeRequest{AgentID: a.ID, Action: "call", Resource: fmt.Sprintf("api:%d:%d", w, i)}, "")
						if err != nil {
							return // the sidecar died: this call has no answer
						}
						mu.Lock()
						received = append(received, res.AuditID)
						if i == 0 {
							answering++
						}
						if answering == workers && len(received) >= loadedAt && !isLoaded {
							isLoaded = true
							close(loaded)
						}
						mu.Unlock()
					}
				})
			}
			select {
			case <-loaded:
			case <-s.done:
				close(stop)
				t.Fatalf("the sidecar exited under load before the kill:\n%s", s.log())
			case <-time.After(60 * time.Second):
				close(stop)
				mu.Lock()
				n, m := len(received), answering
				mu.Unlock()
				t.Fatalf("after 60s of load, %d decisions answered to %d of %d workers; want %d to all of them", n, m, workers, loadedAt)
			}
			if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-s.done
			close(stop)
			wg.Wait()
			if len(received) < 50 {
				t.Fatalf("only %d decisions before the kill; the load did not run", len(received))
			}

			st, err := store.Open(t.Context(), store.Options{URL: db})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			have := map[string]bool{}
			if err := st.ExportAudit(t.Context(), store.AuditFilter{AgentID: a.ID, Kind: domain.KindDecision}, func(e domain.AuditEntry) error {
				have[e.ID] = true
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			lost := 0
			for _, id := range received {
				if !have[id] {
					lost++
				}
			}
			t.Logf("%s: SIGKILL after %d answered decisions (%d rows on disk): %d audit rows lost", name, len(received), len(have), lost)
			if lost != 0 {
				t.Errorf("%d of %d answered decisions have no audit row", lost, len(received))
			}
			// The trail a SIGKILL cut short is still intact: the rows after
			// the last checkpoint are reported, not refused.
			if out, _, code := cli(t, nil, "audit", "verify", "--database", db); code != 0 || !strings.Contains(out, "intact") {
				t.Errorf("audit verify after SIGKILL exited %d:\n%s", code, out)
			} else {
				t.Logf("%s: %s", name, strings.SplitN(out, "\n", 2)[0])
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	cl := s.adminClient()
	// Prometheus scrapes with a key of role metrics.
	scraper := keyed(s.mintKey(t, "prometheus", "metrics").Key)
	a := mustCreate(t, cl, perm("api:*", "call"))
	for i := range 20 {
		authz(t, cl, api.AuthorizeRequest{AgentID: a.ID, Action: "call", Resource: fmt.Sprint("api:", i)})
	}
	authz(t, cl, api.AuthorizeRequest{AgentID: a.ID, Action: "drop", Resource: "api:x"})
	resp, err := scraper.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics with a metrics key = %d %s; want 200", resp.StatusCode, body)
	}
	for _, want := range []string{
		`kavach_decisions_total{result="allowed"} 20`, `kavach_decisions_total{result="denied"} 1`,
		"kavach_audit_rows_total 21", `kavach_authorize_duration_seconds_bucket{le="+Inf"} 21`,
		"kavach_audit_batch_size_count", `kavach_audit_mode{mode="sync"} 1`, "kavach_ready 1", "kavach_sync_lag 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
