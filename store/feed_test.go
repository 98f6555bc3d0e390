package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"

	"github.com/jackc/pgx/v5"

	"github.com/kavach-dev/kavach/internal/pgtest"
)

// pair opens two stores on one database, as two replicas would.
func pair(t *testing.T, name string) (*Store, *Store) {
	t.Helper()
	var url string
	switch name {
	case "sqlite-file":
		url = filepath.Join(t.TempDir(), "kavach.db")
	case "postgres":
		url = pgtest.URL(t)
	}
	a, err := Open(t.Context(), Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	b, err := Open(t.Context(), Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return a, b
}

func TestEveryWriteFeedsTheChangeFeed(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, c *clock) {
		ctx := t.Context()
		start, err := s.LatestChange(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.CreateAgent(ctx, newAgent("u", "h1", domain.Permission{Resource: "*", Actions: []string{"*"}}), 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.CreateAgent(ctx, newAgent("u", "h2"), 0)
		name := "x"
		_, _ = s.UpdateAgent(ctx, a.ID, AgentUpdate{Name: &name})
		_, _ = s.RotateToken(ctx, a.ID, "h3")
		d, err := s.CreateDelegation(ctx, domain.Delegation{FromAgent: a.ID, ToAgent: b.ID, Depth: 1, MaxDepth: 1,
			ExpiresAt: c.Now().Add(time.Hour), Permissions: []domain.Grant{{Resource: "x", Actions: []string{"r"}}}})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.RevokeDelegation(ctx, d.ID)
		_, _ = s.RevokeDelegation(ctx, d.ID) // no change: already revoked
		ap, err := s.CreateApproval(ctx, domain.Approval{AgentID: a.ID, OwnerID: "u", Action: "r", Resource: "x", ExpiresAt: c.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ResolveApproval(ctx, ap.ID, domain.ApprovalApproved, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.InsertAudit(ctx, domain.AuditEntry{AgentID: a.ID, Action: "r", Resource: "x", Result: domain.ResultAllowed, Code: "allowed", Reason: "r"},
			Consumption{ApprovalID: ap.ID}); err != nil {
			t.Fatal(err)
		}
		_, _ = s.InsertAudit(ctx, domain.AuditEntry{Action: "r", Resource: "x", Result: domain.ResultDenied, Code: "c", Reason: "r"}, Consumption{}) // no change
		_, _ = s.RevokeAgent(ctx, b.ID)

		changes, err := s.ChangesSince(ctx, start, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, ch := range changes {
			got = append(got, ch.Kind+":"+ch.EntityID)
			if i > 0 && ch.Seq <= changes[i-1].Seq {
				t.Errorf("sequence not increasing: %d after %d", ch.Seq, changes[i-1].Seq)
			}
		}
		want := []string{"agent:" + a.ID, "agent:" + b.ID, "agent:" + a.ID, "agent:" + a.ID, "delegation:" + d.ID, "agent:" + b.ID,
			"delegation:" + d.ID, "approval:" + ap.ID, "approval:" + ap.ID, "approval:" + ap.ID, "agent:" + b.ID}
		if len(got) != len(want) {
			t.Fatalf("changes = %v; want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("change %d = %s; want %s", i, got[i], want[i])
			}
		}
		latest, _ := s.LatestChange(ctx)
		if latest != changes[len(changes)-1].Seq {
			t.Errorf("LatestChange = %d; want %d", latest, changes[len(changes)-1].Seq)
		}
		if more, _ := s.ChangesSince(ctx, latest, 100); len(more) != 0 {
			t.Errorf("ChangesSince(latest) = %v; want none", more)
		}
	})
}

// Two replicas racing for one quota: the database admits exactly the limit.
func TestRateLimitIsExactAcrossReplicas(t *testing.T) {
	for _, name := range []string{"sqlite-file", "postgres"} {
		t.Run(name, func(t *testing.T) {
			a, b := pair(t, name)
			var allowed, limited atomic.Int32
			var wg sync.WaitGroup
			for i := range 50 {
				s := a
				if i%2 == 1 {
					s = b
				}
				wg.Go(func() {
					_, err := s.InsertAudit(context.Background(), domain.AuditEntry{AgentID: "agt_x", Action: "call", Resource: "r", Result: domain.ResultAllowed, Code: "allowed", Reason: "r"},
						Consumption{Rates: []RateEvent{{AgentID: "agt_x", PermKey: "k", Resource: "r", Limit: 10}}})
					switch {
					case err == nil:
						allowed.Add(1)
					case errors.Is(err, ErrRateLimited):
						limited.Add(1)
					default:
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if allowed.Load() != 10 || limited.Load() != 40 {
				t.Errorf("50 calls on two replicas under a limit of 10: %d allowed, %d limited", allowed.Load(), limited.Load())
			}
			counts, err := a.CountCalls(t.Context(), "agt_x", "r", time.Now().Add(-time.Hour))
			if err != nil || counts["k"] != 10 {
				t.Errorf("CountCalls = %v, %v; want k=10", counts, err)
			}
			page, _, _ := b.QueryAudit(t.Context(), AuditFilter{Limit: 100})
			if len(page) != 10 {
				t.Errorf("audit rows = %d; want 10 (a refused call writes nothing)", len(page))
			}
		})
	}
}

func TestApprovalIsUsedOnceAcrossReplicas(t *testing.T) {
	for _, name := range []string{"sqlite-file", "postgres"} {
		t.Run(name, func(t *testing.T) {
			a, b := pair(t, name)
			ctx := t.Context()
			ag, err := a.CreateAgent(ctx, newAgent("u", "h"), 0)
			if err != nil {
				t.Fatal(err)
			}
			ap, _ := a.CreateApproval(ctx, domain.Approval{AgentID: ag.ID, OwnerID: "u", Action: "r", Resource: "x", ExpiresAt: time.Now().Add(time.Hour)})
			if _, err := b.ResolveApproval(ctx, ap.ID, domain.ApprovalApproved, ""); err != nil {
				t.Fatal(err)
			}
			if _, err := a.ResolveApproval(ctx, ap.ID, domain.ApprovalDenied, ""); !errors.Is(err, ErrConflict) {
				t.Errorf("resolving twice = %v; want ErrConflict", err)
			}
			var used atomic.Int32
			var wg sync.WaitGroup
			for i := range 20 {
				s := a
				if i%2 == 1 {
					s = b
				}
				wg.Go(func() {
					_, err := s.InsertAudit(context.Background(), domain.AuditEntry{AgentID: ag.ID, Action: "r", Resource: "x", Result: domain.ResultAllowed, Code: "allowed", Reason: "r"},
						Consumption{ApprovalID: ap.ID})
					if err == nil {
						used.Add(1)
					} else if !errors.Is(err, ErrConflict) {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if used.Load() != 1 {
				t.Errorf("20 racing uses of one approval on two replicas: %d succeeded; want 1", used.Load())
			}
		})
	}
}

// The listener reports commits, and after its connection is killed it
// reconnects and reports again.
func TestListenSurvivesAKilledConnection(t *testing.T) {
	url := pgtest.URL(t)
	app := "kavach-test-" + filepath.Base(t.TempDir())
	s, err := Open(t.Context(), Options{URL: url, ApplicationName: app})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	notes := make(chan struct{}, 100)
	var failures atomic.Int32
	go s.Listen(ctx, func() { notes <- struct{}{} }, func(error) { failures.Add(1) })
	wait := func(what string) {
		t.Helper()
		select {
		case <-notes:
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification %s", what)
		}
	}
	wait("on connect")
	if _, err := s.CreateAgent(t.Context(), newAgent("u", "h1"), 0); err != nil {
		t.Fatal(err)
	}
	wait("after a write")

	conn, err := pgx.Connect(t.Context(), pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	if err := conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1`, app+"-listener").Scan(&killed); err != nil || killed == 0 {
		t.Fatalf("terminated %d listener connections: %v", killed, err)
	}
	wait("on reconnect")
	if failures.Load() == 0 {
		t.Error("the broken connection was not reported")
	}
	if _, err := s.CreateAgent(t.Context(), newAgent("u", "h2"), 0); err != nil {
		t.Fatal(err)
	}
	wait("after a write on the new connection")
}

// Two replicas resolving one approval at once: exactly one wins.
func TestConcurrentResolveHasOneWinner(t *testing.T) {
	for _, name := range []string{"sqlite-file", "postgres"} {
		t.Run(name, func(t *testing.T) {
			a, b := pair(t, name)
			ctx := t.Context()
			ag, err := a.CreateAgent(ctx, newAgent("u", "h"), 0)
			if err != nil {
				t.Fatal(err)
			}
			for round := range 20 {
				ap, _ := a.CreateApproval(ctx, domain.Approval{AgentID: ag.ID, OwnerID: "u", Action: "r", Resource: fmt.Sprint("x", round), ExpiresAt: time.Now().Add(time.Hour)})
				var wins atomic.Int32
				var wg sync.WaitGroup
				for i, s := range []*Store{a, b} {
					status := []string{domain.ApprovalApproved, domain.ApprovalDenied}[i]
					wg.Go(func() {
						_, err := s.ResolveApproval(context.Background(), ap.ID, status, "")
						if err == nil {
							wins.Add(1)
						} else if !errors.Is(err, ErrConflict) {
							t.Error(err)
						}
					})
				}
				wg.Wait()
				if wins.Load() != 1 {
					t.Fatalf("round %d: %d resolutions succeeded; want exactly 1", round, wins.Load())
				}
			}
		})
	}
}

// Concurrent updates of different fields on two replicas both survive.
func TestConcurrentUpdatesDoNotLoseWrites(t *testing.T) {
	for _, name := range []string{"sqlite-file", "postgres"} {
		t.Run(name, func(t *testing.T) {
			a, b := pair(t, name)
			ctx := t.Context()
			for round := range 20 {
				ag, err := a.CreateAgent(ctx, newAgent("u", fmt.Sprint("h", round)), 0)
				if err != nil {
					t.Fatal(err)
				}
				exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
				meta := map[string]any{"round": float64(round)}
				var wg sync.WaitGroup
				wg.Go(func() {
					if _, err := a.UpdateAgent(context.Background(), ag.ID, AgentUpdate{ExpiresAt: &exp}); err != nil {
						t.Error(err)
					}
				})
				wg.Go(func() {
					if _, err := b.UpdateAgent(context.Background(), ag.ID, AgentUpdate{Metadata: &meta}); err != nil {
						t.Error(err)
					}
				})
				wg.Wait()
				got, _ := a.GetAgent(ctx, ag.ID)
				if got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || got.Metadata["round"] != float64(round) {
					t.Fatalf("round %d: expiresAt %v, metadata %v; want both updates", round, got.ExpiresAt, got.Metadata)
				}
			}
		})
	}
}

// Closing the store while writers are queuing: every caller gets an answer,
// and every row acknowledged is on disk.
func TestCloseDrainsTheAuditQueue(t *testing.T) {
	for round := range 5 {
		path := filepath.Join(t.TempDir(), fmt.Sprint("k", round, ".db"))
		s, err := Open(t.Context(), Options{URL: path})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var acked atomic.Int32
		// Close comes once every writer is in its loop: each has had a row
		// acknowledged (or given up), and so is queuing its next.
		const writers = 32
		var looping sync.WaitGroup
		looping.Add(writers)
		for range writers {
			wg.Go(func() {
				inLoop := sync.OnceFunc(looping.Done)
				defer inLoop()
				for {
					if _, err := s.InsertAudit(context.Background(), domain.AuditEntry{Action: "a", Resource: "r", Result: domain.ResultDenied, Code: "c", Reason: "r"}, Consumption{}); err != nil {
						return
					}
					acked.Add(1)
					inLoop()
				}
			})
		}
		allLooping := make(chan struct{})
		go func() { looping.Wait(); close(allLooping) }()
		select {
		case <-allLooping:
		case <-time.After(20 * time.Second):
			_ = s.Close()
			t.Fatalf("round %d: after 20s, %d rows acknowledged and some writer has none", round, acked.Load())
		}
		done := make(chan struct{})
		go func() { _ = s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Close hung")
		}
		waited := make(chan struct{})
		go func() { wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
			t.Fatal("writers hung after Close")
		}
		r, err := Open(t.Context(), Options{URL: path})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		_ = r.ExportAudit(t.Context(), AuditFilter{}, func(domain.AuditEntry) error { n++; return nil })
		_ = r.Close()
		if n < int(acked.Load()) {
			t.Fatalf("round %d: %d rows acknowledged, %d on disk", round, acked.Load(), n)
		}
	}
}
