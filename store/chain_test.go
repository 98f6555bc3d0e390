package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/auditchain"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/secret"
)

// The contract of the tamper-evident trail: every way of writing an audit
// row chains it, verification passes on what the store wrote, and fails,
// naming the place, on every kind of tampering with the database.
func chainTests() []storeTest {
	return []storeTest{
		{name: "IntactTrailVerifies", opens: testIntactTrailVerifies},
		{name: "TamperingIsFound", opens: testTamperingIsFound},
		{name: "RollbackKeepsTheChain", opens: testRollbackKeepsTheChain},
		{name: "RetentionPurgesVerifiably", opens: testRetentionPurgesVerifiably},
		{name: "RetentionRunsInTheBackground", opens: testRetentionRunsInTheBackground},
		{name: "RetentionAndCloseResistTampering", opens: testRetentionAndCloseResistTampering},
		{name: "LegacyRowsChainedOnce", opens: testLegacyRowsChainedOnce},
		{name: "ReplicasChainApart", opens: testReplicasChainApart, replicas: true},
	}
}

var (
	testSecret, _  = secret.New("the test secret, at least 32 characters long")
	otherSecret, _ = secret.New("another secret, also at least 32 characters")
)

func chainKeys(t *testing.T, secrets ...secret.Secret) auditchain.Keys {
	t.Helper()
	keys, err := CheckpointKeys(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// writeTrail writes audit rows every way the store does: group-committed
// decisions, a decision with what it consumed, events with their change,
// a recorded event. It returns the IDs of the decisions.
func writeTrail(t *testing.T, s *Store, decisions int) []string {
	t.Helper()
	ctx := t.Context()
	ctx = WithActor(ctx, domain.Actor{Type: domain.ActorKey, ID: "key_1", Name: "app"})
	a, err := s.CreateAgent(ctx, newAgent("owner", fmt.Sprintf("h-%d", time.Now().UnixNano())), 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range decisions {
		wg.Go(func() {
			e := domain.AuditEntry{AgentID: a.ID, OwnerID: "owner", Action: "read", Resource: fmt.Sprintf("r:%d", i),
				Arguments: []byte(`{"q": "<b>&</b>", "n": 1}`), Result: domain.ResultAllowed, Code: "allowed", Reason: "ok"}
			out, err := s.InsertAudit(ctx, e, Consumption{})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids = append(ids, out.ID)
			mu.Unlock()
		})
	}
	wg.Wait()
	if _, err := s.InsertAudit(ctx, domain.AuditEntry{AgentID: a.ID, OwnerID: "owner", Action: "call", Resource: "r:rated",
		Result: domain.ResultAllowed, Code: "allowed", Reason: "ok"},
		Consumption{Rates: []RateEvent{{AgentID: a.ID, PermKey: "0", Resource: "r:rated", Limit: 10}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAgent(ctx, a.ID, AgentUpdate{Name: ptr("renamed")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordEvent(ctx, Event{Action: "api.refused", Target: "/v1/keys", Result: domain.ResultDenied, Code: "forbidden"}); err != nil {
		t.Fatal(err)
	}
	return ids
}

func ptr[T any](v T) *T { return &v }

func verify(t *testing.T, s *Store, keys auditchain.Keys) auditchain.Report {
	t.Helper()
	r, err := s.VerifyAudit(t.Context(), keys)
	if err != nil {
		t.Fatalf("VerifyAudit = %v", err)
	}
	return r
}

func testIntactTrailVerifies(t *testing.T, b backend) {
	s := openStore(t, Options{URL: b.url(t), Secret: testSecret})
	writeTrail(t, s, 50)
	// Before any checkpoint: intact, every row vouched for by its chain only.
	r := verify(t, s, chainKeys(t, testSecret))
	if r.Rows != 54 || r.Unsealed != 54 {
		t.Errorf("before sealing: rows %d, unsealed %d; want 54 and 54", r.Rows, r.Unsealed)
	}
	if err := s.Seal(t.Context()); err != nil {
		t.Fatal(err)
	}
	r = verify(t, s, chainKeys(t, testSecret))
	if !r.OK() || r.Rows != 54 || r.Unsealed != 0 || r.Signed < 2 || r.Chains < 2 {
		t.Fatalf("intact trail: %+v", r)
	}
	// Another secret does not vouch for it; none checks the structure only.
	if r := verify(t, s, chainKeys(t, otherSecret)); r.OK() || r.Problems[0].Kind != auditchain.Forged {
		t.Errorf("with the wrong secret: %+v", r)
	}
	if r := verify(t, s, nil); !r.OK() || len(r.Notes) == 0 {
		t.Errorf("without a secret: %+v", r)
	}
	// The previous secret still verifies what it signed.
	if r := verify(t, s, chainKeys(t, otherSecret, testSecret)); !r.OK() {
		t.Errorf("with the previous secret among the keys: %+v", r)
	}
	// What an export shows verifies offline.
	var rows []domain.AuditEntry
	if err := s.ExportAudit(t.Context(), AuditFilter{}, func(e domain.AuditEntry) error { rows = append(rows, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if r := auditchain.VerifyRows(rows, nil, nil, false); !r.OK() || r.Rows != 54 {
		t.Errorf("export verified offline: %+v", r)
	}
}

// tamperCase changes the database after a sealed trail was written, and
// says what verification must find.
type tamperCase struct {
	name   string
	tamper func(t *testing.T, s *Store, ids []string) (rowID string)
	kind   string
}

func testTamperingIsFound(t *testing.T, b backend) {
	exec := func(t *testing.T, s *Store, q string, args ...any) {
		t.Helper()
		if _, err := s.w.ExecContext(t.Context(), q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	sorted := func(t *testing.T, s *Store, id string) []domain.AuditEntry {
		// The rows of id's chain, in order.
		var chainID string
		if err := s.r.QueryRowContext(t.Context(), `SELECT chain_id FROM audit_log WHERE id = ?`, id).Scan(&chainID); err != nil {
			t.Fatal(err)
		}
		var out []domain.AuditEntry
		if err := scanAuditRows(t.Context(), s.r, func(e domain.AuditEntry) { out = append(out, e) },
			`SELECT `+auditColumns+` FROM audit_log WHERE chain_id = ? ORDER BY chain_seq`, chainID); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// rewrite turns the chain c's second row into a denial and re-hashes
	// every row after it, as a careful attacker would.
	rewrite := func(t *testing.T, s *Store, c []domain.AuditEntry) {
		c[1].Result = domain.ResultDenied
		for i := 1; i < len(c); i++ {
			auditchain.Link(&c[i], c[i].Chain.ID, c[i].Chain.Seq, c[i-1].Chain.Hash)
			exec(t, s, `UPDATE audit_log SET result = ?, prev_hash = ?, hash = ? WHERE id = ?`, c[i].Result, c[i].Chain.PrevHash, c[i].Chain.Hash, c[i].ID)
		}
	}
	cases := []tamperCase{
		{"ResultFlipped", func(t *testing.T, s *Store, ids []string) string {
			exec(t, s, `UPDATE audit_log SET result = 'denied' WHERE id = ?`, ids[3])
			return ids[3]
		}, auditchain.Changed},
		{"ValueStoredAsAnotherType", func(t *testing.T, s *Store, ids []string) string {
			// SQLite: a BLOB reads back as the same string, so the hash holds,
			// but the row escapes filters. (PostgreSQL's types refuse it.)
			if s.dialect.name() == "sqlite" {
				exec(t, s, `UPDATE audit_log SET agent_id = CAST(agent_id AS BLOB) WHERE id = ?`, ids[5])
			} else {
				exec(t, s, `UPDATE audit_log SET agent_id = 'agt_other' WHERE id = ?`, ids[5])
			}
			return ids[5]
		}, auditchain.Changed},
		{"ArgumentsEdited", func(t *testing.T, s *Store, ids []string) string {
			exec(t, s, `UPDATE audit_log SET arguments = '{"q":"x"}' WHERE id = ?`, ids[7])
			return ids[7]
		}, auditchain.Changed},
		{"RowDeleted", func(t *testing.T, s *Store, ids []string) string {
			c := sorted(t, s, ids[0])
			exec(t, s, `DELETE FROM audit_log WHERE id = ?`, c[4].ID)
			return c[5].ID // the row after the gap is named
		}, auditchain.Deleted},
		{"LastRowsDeleted", func(t *testing.T, s *Store, ids []string) string {
			c := sorted(t, s, ids[0])
			exec(t, s, `DELETE FROM audit_log WHERE chain_id = ? AND chain_seq > ?`, c[0].Chain.ID, len(c)-3)
			return ""
		}, auditchain.Deleted},
		{"ChainDeleted", func(t *testing.T, s *Store, ids []string) string {
			c := sorted(t, s, ids[0])
			exec(t, s, `DELETE FROM audit_log WHERE chain_id = ?`, c[0].Chain.ID)
			return ""
		}, auditchain.Deleted},
		{"RowInsertedOutsideChains", func(t *testing.T, s *Store, _ []string) string {
			exec(t, s, `INSERT INTO audit_log (id, agent_id, owner_id, action, resource, result, code, reason, duration_us, created_at)
				VALUES ('aud_forged', 'agt_x', 'o', 'read', 'r', 'allowed', 'allowed', 'ok', 1, 1)`)
			return "aud_forged"
		}, auditchain.Inserted},
		{"RowInsertedAtATakenPosition", func(t *testing.T, s *Store, ids []string) string {
			c := sorted(t, s, ids[0])
			e := c[2]
			e.ID, e.Result = "aud_forged", domain.ResultAllowed
			if err := insertAuditRow(t.Context(), s.w, e); err != nil {
				t.Fatal(err)
			}
			return ""
		}, auditchain.Inserted},
		{"RowsSwapped", func(t *testing.T, s *Store, ids []string) string {
			c := sorted(t, s, ids[0])
			exec(t, s, `UPDATE audit_log SET chain_seq = -1 WHERE id = ?`, c[2].ID)
			exec(t, s, `UPDATE audit_log SET chain_seq = ? WHERE id = ?`, c[2].Chain.Seq, c[3].ID)
			exec(t, s, `UPDATE audit_log SET chain_seq = ? WHERE id = ?`, c[3].Chain.Seq, c[2].ID)
			return c[3].ID
		}, auditchain.Changed},
		{"ChainRewrittenAndRehashed", func(t *testing.T, s *Store, ids []string) string {
			// A careful attacker: change a row, then recompute every hash
			// after it so the chain is consistent again.
			rewrite(t, s, sorted(t, s, ids[0]))
			return ""
		}, auditchain.Rewritten},
		{"CheckpointForged", func(t *testing.T, s *Store, ids []string) string {
			// The same, and then a checkpoint made to match, without the key.
			c := sorted(t, s, ids[0])
			rewrite(t, s, c)
			cps, err := s.AuditCheckpoints(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, cp := range cps {
				if cp.ChainID == c[0].Chain.ID {
					cp.HeadHash = c[len(c)-1].Chain.Hash
					cp.Sign("", nil)
					exec(t, s, `UPDATE audit_checkpoints SET head_hash = ?, key_id = '', mac = ? WHERE seq = ?`, cp.HeadHash, cp.MAC, cp.Seq)
				}
			}
			return ""
		}, auditchain.Forged},
		{"CheckpointsWiped", func(t *testing.T, s *Store, _ []string) string {
			exec(t, s, `DELETE FROM audit_checkpoints`)
			// Neither the upgrade nor the sealer signs over the gap.
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			writeTrail(t, s, 1)
			if err := s.Seal(t.Context()); !errors.Is(err, ErrCheckpoints) {
				t.Errorf("Seal over wiped checkpoints = %v; want ErrCheckpoints", err)
			}
			return ""
		}, auditchain.Deleted},
		{"NewestCheckpointsDeleted", func(t *testing.T, s *Store, _ []string) string {
			exec(t, s, `DELETE FROM audit_checkpoints WHERE seq > 2`)
			writeTrail(t, s, 1)
			if err := s.Seal(t.Context()); !errors.Is(err, ErrCheckpoints) {
				t.Errorf("Seal after the newest checkpoints were deleted = %v; want ErrCheckpoints", err)
			}
			// What verify sees: the chains sealed only by the deleted
			// checkpoints are now unsealed; a row is changed to show it.
			exec(t, s, `UPDATE audit_log SET reason = 'x' WHERE id = (SELECT MIN(id) FROM audit_log WHERE chain_id <> 'chn_legacy')`)
			return ""
		}, auditchain.Changed},
		{"CheckpointDeleted", func(t *testing.T, s *Store, _ []string) string {
			exec(t, s, `DELETE FROM audit_checkpoints WHERE seq = 2`)
			return ""
		}, auditchain.Deleted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, Options{URL: b.url(t), Secret: testSecret})
			ids := writeTrail(t, s, 12)
			if err := s.Seal(t.Context()); err != nil {
				t.Fatal(err)
			}
			// Checkpoints from two seals, so that one can go missing mid-log.
			writeTrail(t, s, 3)
			if err := s.Seal(t.Context()); err != nil {
				t.Fatal(err)
			}
			if r := verify(t, s, chainKeys(t, testSecret)); !r.OK() {
				t.Fatalf("before tampering: %+v", r)
			}
			row := tc.tamper(t, s, ids)
			r := verify(t, s, chainKeys(t, testSecret))
			if r.OK() {
				t.Fatalf("tampering went unseen: %+v", r)
			}
			first := r.Problems[0]
			if !hasKind(r, tc.kind) || (row != "" && !namesRow(r, row)) {
				t.Fatalf("problems %v; want a %q problem naming %q", r.Problems, tc.kind, row)
			}
			if first.Message == "" {
				t.Errorf("problem without a message: %+v", first)
			}
		})
	}
}

func hasKind(r auditchain.Report, kind string) bool {
	for _, p := range r.Problems {
		if p.Kind == kind {
			return true
		}
	}
	return false
}

func namesRow(r auditchain.Report, id string) bool {
	for _, p := range r.Problems {
		if p.RowID == id && strings.Contains(p.Message, id) {
			return true
		}
	}
	return false
}

// A transaction that wrote an audit row and then failed leaves the chain
// where it was: the rows after it still link.
func testRollbackKeepsTheChain(t *testing.T, b backend) {
	s := openStore(t, Options{URL: b.url(t), Secret: testSecret})
	ctx := t.Context()
	boom := errors.New("boom")
	for i := range 3 {
		err := s.withTx(ctx, func(tx *txn) error {
			row := domain.AuditEntry{ID: fmt.Sprintf("aud_rolled_back_%d", i), Kind: domain.KindEvent, Action: "x", Resource: "y",
				Result: domain.ResultAllowed, Code: "ok", Timestamp: s.now()}
			if err := s.appendAudit(ctx, tx, &row); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		writeTrail(t, s, 2)
	}
	if err := s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if r := verify(t, s, chainKeys(t, testSecret)); !r.OK() || r.Rows != 18 {
		t.Fatalf("after rollbacks: %+v", r)
	}
}

func testRetentionPurgesVerifiably(t *testing.T, b backend) {
	c := newClock()
	s := openStore(t, Options{URL: b.url(t), Secret: testSecret, Now: c.Now})
	ctx := t.Context()
	writeTrail(t, s, 20)
	if err := s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	c.Add(48 * time.Hour)
	recent := writeTrail(t, s, 5)
	if err := s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := s.PurgeAudit(ctx, c.Now().Add(-24*time.Hour))
	if err != nil || n != 24 {
		t.Fatalf("PurgeAudit = %d, %v; want the 24 old rows", n, err)
	}
	r := verify(t, s, chainKeys(t, testSecret))
	if !r.OK() || r.Rows != 9 || r.Purged == 0 {
		t.Fatalf("after retention: %+v", r)
	}
	// Deleting by any other means is still found.
	if _, err := s.w.ExecContext(ctx, `DELETE FROM audit_log WHERE id = ?`, recent[0]); err != nil {
		t.Fatal(err)
	}
	if r := verify(t, s, chainKeys(t, testSecret)); r.OK() || !hasKind(r, auditchain.Deleted) {
		t.Fatalf("a deletion after retention went unseen: %+v", r)
	}
}

// Options.Retention purges by itself, at the sealer's first tick.
func testRetentionRunsInTheBackground(t *testing.T, b backend) {
	c := newClock()
	url := b.url(t)
	s := openStore(t, Options{URL: url, Secret: testSecret, Now: c.Now})
	writeTrail(t, s, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.Add(72 * time.Hour)
	if b.name == "sqlite-memory" {
		return // a database per store: nothing left to purge
	}
	s = openStore(t, Options{URL: url, Secret: testSecret, Now: c.Now, Retention: 48 * time.Hour, SealInterval: 5 * time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := s.r.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM audit_log`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows older than the retention are still there", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := verify(t, s, chainKeys(t, testSecret)); !r.OK() || r.Purged == 0 {
		t.Fatalf("after background retention: %+v", r)
	}
}

// Retention never deletes rows that were rewritten to look old, and a row
// appended to a chain after its writer closed it is found.
func testRetentionAndCloseResistTampering(t *testing.T, b backend) {
	c := newClock()
	url := b.url(t)
	s := openStore(t, Options{URL: url, Secret: testSecret, Now: c.Now})
	ctx := t.Context()
	recent := writeTrail(t, s, 10)
	if err := s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE audit_log SET created_at = 0`); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeAudit(ctx, c.Now().Add(-time.Hour)); n != 0 || !errors.Is(err, ErrCheckpoints) {
		t.Fatalf("PurgeAudit of rows made to look old = %d, %v; want nothing and ErrCheckpoints", n, err)
	}
	if b.name == "sqlite-memory" {
		return
	}
	s2 := openStore(t, Options{URL: url, Secret: testSecret})
	writeTrail(t, s2, 3)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	// Undo the first tampering, then append a well-linked row to a closed chain.
	var chainID string
	if err := s.r.QueryRowContext(ctx, `SELECT chain_id FROM audit_checkpoints WHERE kind = 'close' AND chain_id <> 'chn_legacy' ORDER BY seq DESC LIMIT 1`).Scan(&chainID); err != nil {
		t.Fatal(err)
	}
	var rows []domain.AuditEntry
	if err := scanAuditRows(ctx, s.r, func(e domain.AuditEntry) { rows = append(rows, e) },
		`SELECT `+auditColumns+` FROM audit_log WHERE chain_id = ? ORDER BY chain_seq`, chainID); err != nil || len(rows) == 0 {
		t.Fatal(err)
	}
	forged := rows[len(rows)-1]
	forged.ID = "aud_forged_after_close"
	auditchain.Link(&forged, chainID, forged.Chain.Seq+1, forged.Chain.Hash)
	if err := insertAuditRow(ctx, s.w, forged); err != nil {
		t.Fatal(err)
	}
	_ = recent
	s3 := openStore(t, Options{URL: url, Verify: true})
	if r := verify(t, s3, chainKeys(t, testSecret)); !namesRow(r, "aud_forged_after_close") {
		t.Fatalf("a row appended after a close: %+v", r)
	}
}

// Rows from before chaining are chained by the upgrade, once: a row slipped
// in later, outside any chain, is never taken in.
func testLegacyRowsChainedOnce(t *testing.T, b backend) {
	url := b.url(t)
	s := openStore(t, Options{URL: url, Secret: testSecret})
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The database as the previous release left it: rows, no chain.
	exec(`DELETE FROM audit_checkpoints`)
	for i := range 5 {
		exec(`INSERT INTO audit_log (id, agent_id, owner_id, action, resource, result, code, reason, duration_us, created_at)
			VALUES (?, 'agt_old', 'o', 'read', 'r', 'allowed', 'allowed', 'ok', 1, ?)`, fmt.Sprintf("aud_old_%d", i), 1000+i)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if r := verify(t, s, chainKeys(t, testSecret)); !r.OK() || r.Rows != 5 {
		t.Fatalf("after the upgrade: %+v", r)
	}
	exec(`INSERT INTO audit_log (id, agent_id, owner_id, action, resource, result, code, reason, duration_us, created_at)
		VALUES ('aud_slipped_in', 'agt_old', 'o', 'read', 'r', 'allowed', 'allowed', 'ok', 1, 2000)`)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if r := verify(t, s, chainKeys(t, testSecret)); r.OK() || !namesRow(r, "aud_slipped_in") {
		t.Fatalf("a row inserted after the upgrade: %+v", r)
	}
}

// Two replicas write at once, each to chains of its own, and the trail
// verifies after both stop.
func testReplicasChainApart(t *testing.T, b backend) {
	url := b.url(t)
	var stores []*Store
	for range 2 {
		s, err := Open(t.Context(), Options{URL: url, Secret: testSecret, SealInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			for range 5 {
				writeTrail(t, s, 10)
			}
		})
	}
	wg.Wait()
	for _, s := range stores {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, Options{URL: url, Verify: true})
	r := verify(t, s, chainKeys(t, testSecret))
	if !r.OK() || r.Rows != 2*5*14 || r.Unsealed != 0 || r.Chains < 4 {
		t.Fatalf("two replicas: %+v", r)
	}
}
