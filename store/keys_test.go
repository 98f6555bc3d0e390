package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of API keys: create, find by hash, expire, revoke (with
// their audit events), no decision row under a revoked key, and one
// bootstrap key however many replicas start at once.
func keyTests() []storeTest {
	return []storeTest{
		{name: "Lifecycle", fn: testKeysContract},
		{name: "BootstrapKeyOnceAcrossReplicas", opens: testBootstrapKeyOnceAcrossReplicas, replicas: true},
	}
}

func testKeysContract(t *testing.T, s *Store, c *clock) {
	ctx := WithActor(t.Context(), domain.Actor{Type: domain.ActorAdminEnv, ID: "KAVACH_ADMIN_KEY"})
	exp := c.Now().Add(time.Hour)
	k, err := s.CreateKey(ctx, domain.APIKey{Name: "app", Roles: []string{"decider"}, Hash: "h1", ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	if k.CreatedBy != "KAVACH_ADMIN_KEY" || k.Status != domain.StatusActive {
		t.Errorf("CreateKey = %+v; want createdBy the actor, active", k)
	}
	if _, err := s.CreateKey(ctx, domain.APIKey{Name: "dup", Roles: []string{"admin"}, Hash: "h1"}); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateKey with a hash taken = %v; want ErrConflict", err)
	}
	got, err := s.KeyByHash(t.Context(), "h1")
	if err != nil || got.ID != k.ID || len(got.Roles) != 1 || got.Roles[0] != "decider" {
		t.Errorf("KeyByHash = %+v, %v; want the key", got, err)
	}
	if _, err := s.KeyByHash(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("KeyByHash(unknown) = %v; want ErrNotFound", err)
	}
	c.Add(time.Hour)
	if got, _ := s.GetKey(t.Context(), k.ID); got.Status != domain.StatusExpired {
		t.Errorf("status past expiry = %s; want expired", got.Status)
	}
	revoked, err := s.RevokeKey(ctx, k.ID)
	if err != nil || revoked.Status != domain.StatusRevoked || revoked.RevokedAt == nil {
		t.Errorf("RevokeKey = %+v, %v; want revoked", revoked, err)
	}
	if _, err := s.RevokeKey(ctx, k.ID); err != nil {
		t.Errorf("second RevokeKey = %v; want harmless", err)
	}
	if _, err := s.RevokeKey(ctx, "key_nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeKey(unknown) = %v; want ErrNotFound", err)
	}
	var events []domain.AuditEntry
	_ = s.ExportAudit(t.Context(), AuditFilter{Kind: domain.KindEvent}, func(e domain.AuditEntry) error { events = append(events, e); return nil })
	if len(events) != 2 || events[0].Action != "key.create" || events[1].Action != "key.revoke" || events[1].Actor.ID != "KAVACH_ADMIN_KEY" {
		t.Errorf("events = %+v; want key.create and one key.revoke, by the actor", events)
	}
	// A decision asked with the revoked key commits nothing, through the
	// group commit or with a consumption.
	row := domain.AuditEntry{AgentID: "agt_x", Action: "read", Resource: "r", Result: domain.ResultAllowed, Code: "allowed", Reason: "r",
		Actor: domain.Actor{Type: domain.ActorKey, ID: k.ID}}
	if _, err := s.InsertAudit(t.Context(), row, Consumption{}); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("InsertAudit with a revoked key = %v; want ErrKeyRevoked", err)
	}
	if _, err := s.InsertAudit(t.Context(), row, Consumption{Rates: []RateEvent{{AgentID: "agt_x", PermKey: "p", Resource: "r", Limit: 5}}}); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("InsertAudit with a revoked key and a rate = %v; want ErrKeyRevoked", err)
	}
	n := 0
	_ = s.ExportAudit(t.Context(), AuditFilter{Kind: domain.KindDecision}, func(domain.AuditEntry) error { n++; return nil })
	if n != 0 {
		t.Errorf("decision rows = %d; want 0", n)
	}
}

// Replicas starting at once on an empty database make one bootstrap key
// between them.
func testBootstrapKeyOnceAcrossReplicas(t *testing.T, be backend) {
	stores := be.replicas(t, 3)
	var wg sync.WaitGroup
	created := make([]bool, len(stores))
	for i, s := range stores {
		wg.Go(func() {
			_, ok, err := s.BootstrapKey(t.Context(), domain.APIKey{Name: "bootstrap-admin", Roles: []string{"admin"}, Hash: "boot" + string(rune('a'+i))})
			if err != nil {
				t.Error(err)
			}
			created[i] = ok
		})
	}
	wg.Wait()
	n := 0
	for _, ok := range created {
		if ok {
			n++
		}
	}
	keys, _, err := stores[0].ListKeys(t.Context(), Page{Limit: 100})
	if n != 1 || err != nil || len(keys) != 1 {
		t.Errorf("bootstraps = %d, keys = %d (%v); want exactly one", n, len(keys), err)
	}
}
