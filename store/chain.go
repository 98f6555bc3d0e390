package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kavach-dev/kavach/auditchain"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/secret"
)

// The tamper-evident trail (package auditchain says what is hashed and
// why). Here: who appends to which chain, and the checkpoints.
//
// A chain has one holder at a time, so appending to it takes no lock: the
// group-commit writer holds a chain of its own for good, and a transaction
// that writes audit rows itself (an event with its change, a decision with
// what it consumed) leases a free chain for its duration, or opens a new
// one when none is free. Replicas and concurrent transactions therefore
// never wait for one another to append. A chain's head moves when the
// transaction commits; a rollback puts it back; a commit whose outcome is
// unknown retires the chain, since rows may or may not follow its head.
//
// The sealer writes checkpoints: every sealInterval for the chains that
// moved, and once more on Close.

// legacyChain holds the rows written before chaining existed.
const legacyChain = "chn_legacy"

// lockCheckpoints serialises checkpoint numbering (and legacy chaining and
// purges) across replicas.
const lockCheckpoints = 7400004

// DefaultSealInterval is how often the sealer checkpoints chains that moved.
const DefaultSealInterval = 10 * time.Second

type chainHead struct {
	seq  int64
	hash string
}

type chain struct {
	id string
	// head is the holder's: the last row appended, committed or not.
	head chainHead
	// committed is the head as of the last commit, for the sealer.
	committed atomic.Pointer[chainHead]
	// retired: a commit failed in doubt; nothing more is appended.
	retired atomic.Bool
	// sealed is the position the last checkpoint covers (sealer only).
	sealed int64
}

func (c *chain) link(e *domain.AuditEntry) {
	auditchain.Link(e, c.id, c.head.seq+1, c.head.hash)
	c.head = chainHead{seq: e.Chain.Seq, hash: e.Chain.Hash}
}

// settle ends a transaction that appended to c: committed publishes the
// head, a rollback restores it, a commit in doubt retires the chain.
func (c *chain) settle(committed, doubt bool) {
	switch {
	case committed:
		h := c.head
		c.committed.Store(&h)
	case doubt:
		c.retired.Store(true)
	default:
		c.head = *c.committed.Load()
	}
}

// chains is the registry of this process's chains.
type chains struct {
	s    *Store
	mu   sync.Mutex
	all  map[string]*chain
	free []*chain
}

// open starts a new chain.
func (cs *chains) open() *chain {
	c := &chain{id: cs.s.ids.next("chn_", cs.s.now())}
	c.head = chainHead{hash: auditchain.Genesis(c.id)}
	h := c.head
	c.committed.Store(&h)
	cs.mu.Lock()
	cs.all[c.id] = c
	cs.mu.Unlock()
	return c
}

// lease hands out a free chain, or a new one.
func (cs *chains) lease() *chain {
	cs.mu.Lock()
	if n := len(cs.free); n > 0 {
		c := cs.free[n-1]
		cs.free = cs.free[:n-1]
		cs.mu.Unlock()
		return c
	}
	cs.mu.Unlock()
	return cs.open()
}

func (cs *chains) release(c *chain) {
	if c.retired.Load() {
		return
	}
	cs.mu.Lock()
	cs.free = append(cs.free, c)
	cs.mu.Unlock()
}

// unsealed lists the chains whose committed head is past their last
// checkpoint, with that head.
func (cs *chains) unsealed() ([]*chain, []chainHead) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var list []*chain
	var heads []chainHead
	for _, c := range cs.all {
		if h := c.committed.Load(); h.seq > c.sealed {
			list = append(list, c)
			heads = append(heads, *h)
		} else if c.retired.Load() {
			delete(cs.all, c.id)
		}
	}
	return list, heads
}

// appendAudit writes e inside tx, in the chain tx holds (leasing one on
// the first row).
func (s *Store) appendAudit(ctx context.Context, tx *txn, e *domain.AuditEntry) error {
	if tx.chain == nil {
		tx.chain, tx.leased = s.chains.lease(), true
	}
	tx.chain.link(e)
	return insertAuditRow(ctx, tx, *e)
}

// checkpointKey is the key that signs checkpoints, nil without a secret.
type checkpointKey struct {
	id  string
	key []byte
}

func newCheckpointKey(sec secret.Secret) (checkpointKey, error) {
	if !sec.Set() {
		return checkpointKey{}, nil
	}
	key, err := sec.Key(secret.AuditCheckpoint)
	if err != nil {
		return checkpointKey{}, err
	}
	id, err := sec.KeyID(secret.AuditCheckpoint)
	return checkpointKey{id: id, key: key}, err
}

// CheckpointKeys are the keys verification accepts: those of the given
// secrets (the current one, and the one before a rotation).
func CheckpointKeys(secrets ...secret.Secret) (auditchain.Keys, error) {
	keys := auditchain.Keys{}
	for _, sec := range secrets {
		if !sec.Set() {
			continue
		}
		k, err := newCheckpointKey(sec)
		if err != nil {
			return nil, err
		}
		keys[k.id] = k.key
	}
	return keys, nil
}

// addCheckpoints appends checkpoints for heads (one per chain in ids)
// under the checkpoint lock, signing each and linking it to the last.
func (s *Store) addCheckpoints(ctx context.Context, tx *txn, kind string, ids []string, heads []chainHead) error {
	if err := s.dialect.advisoryLock(ctx, tx, globalLock(lockCheckpoints)); err != nil {
		return fmt.Errorf("lock checkpoints: %w", err)
	}
	last := auditchain.Checkpoint{}
	err := tx.QueryRowContext(ctx, `SELECT seq, mac FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`).Scan(&last.Seq, &last.MAC)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read last checkpoint: %w", err)
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	for i, id := range ids {
		cp := auditchain.Checkpoint{Seq: last.Seq + 1, Kind: kind, ChainID: id, ChainSeq: heads[i].seq,
			HeadHash: heads[i].hash, CreatedAt: now, PrevMAC: last.MAC}
		cp.Sign(s.cpKey.id, s.cpKey.key)
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, kind, chain_id, chain_seq, head_hash, created_at, key_id, prev_mac, mac)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, cp.Seq, cp.Kind, cp.ChainID, cp.ChainSeq, cp.HeadHash, toMillis(cp.CreatedAt),
			cp.KeyID, cp.PrevMAC, cp.MAC); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
		last = cp
	}
	return nil
}

// Seal checkpoints every chain of this process that moved since its last
// checkpoint. The sealer calls it periodically; Close once more.
func (s *Store) Seal(ctx context.Context) error { return s.seal(ctx, auditchain.KindSeal) }

func (s *Store) seal(ctx context.Context, kind string) error {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	list, heads := s.chains.unsealed()
	if len(list) == 0 {
		return nil
	}
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.id
	}
	if err := s.withTx(ctx, func(tx *txn) error { return s.addCheckpoints(ctx, tx, kind, ids, heads) }); err != nil {
		return err
	}
	for i, c := range list {
		c.sealed = heads[i].seq
	}
	return nil
}

// sealer checkpoints and applies retention until stop closes.
func (s *Store) sealer(interval, retention time.Duration, log *slog.Logger, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	nextPurge := time.Time{}
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		ctx, cancel := s.withTimeout(context.Background())
		if err := s.Seal(ctx); err != nil {
			log.Warn("audit checkpoint failed; retrying at the next interval", "error", err)
		}
		if retention > 0 && !s.now().Before(nextPurge) {
			n, err := s.PurgeAudit(ctx, s.now().Add(-retention))
			switch {
			case err != nil:
				log.Warn("audit retention failed; retrying later", "error", err)
			case n > 0:
				log.Info("audit retention purged rows", "rows", n, "retention", retention.String())
			}
			nextPurge = s.now().Add(purgeEvery)
		}
		cancel()
	}
}

// purgeEvery is how often retention runs; purgeBatch how many positions
// of one chain one purge transaction deletes at most.
const (
	purgeEvery = time.Hour
	purgeBatch = 5000
)

// PurgeAudit deletes the audit rows older than before: for each chain, the
// positions up to its last row older than before, in transactions that
// each leave a purge checkpoint, so that verification still passes. It
// returns how many rows it deleted.
func (s *Store) PurgeAudit(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.withTx(ctx, func(tx *txn) error {
			if err := s.dialect.advisoryLock(ctx, tx, globalLock(lockCheckpoints)); err != nil {
				return fmt.Errorf("lock checkpoints: %w", err)
			}
			var id string
			var first, upTo int64
			err := tx.QueryRowContext(ctx, `SELECT chain_id, MIN(chain_seq), MAX(chain_seq) FROM audit_log
				WHERE chain_id <> '' AND created_at < ? GROUP BY chain_id ORDER BY chain_id LIMIT 1`, toMillis(before)).Scan(&id, &first, &upTo)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("find rows to purge: %w", err)
			}
			upTo = min(upTo, first+purgeBatch-1)
			var head string
			if err := tx.QueryRowContext(ctx, `SELECT hash FROM audit_log WHERE chain_id = ? AND chain_seq = ? ORDER BY id LIMIT 1`,
				id, upTo).Scan(&head); err != nil {
				return fmt.Errorf("read purge head: %w", err)
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE chain_id = ? AND chain_seq <= ?`, id, upTo)
			if err != nil {
				return fmt.Errorf("purge audit rows: %w", err)
			}
			if n, err = res.RowsAffected(); err != nil {
				return fmt.Errorf("purge audit rows: %w", err)
			}
			return s.addCheckpoints(ctx, tx, auditchain.KindPurge, []string{id}, []chainHead{{seq: upTo, hash: head}})
		})
		if err != nil || n == 0 {
			return total, err
		}
		total += n
	}
}

// legacyBatch is how many rows one legacy-chaining transaction chains.
const legacyBatch = 1000

// chainLegacy chains the rows written before chaining existed, once: only
// while no checkpoint exists, so rows inserted later, outside any chain,
// are never taken in. It ends with a checkpoint of the legacy chain (at
// position 0 when there were no rows), which closes that door.
func (s *Store) chainLegacy(ctx context.Context) error {
	for {
		done := false
		err := s.withTx(ctx, func(tx *txn) error {
			if err := s.dialect.advisoryLock(ctx, tx, globalLock(lockCheckpoints)); err != nil {
				return fmt.Errorf("lock checkpoints: %w", err)
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_checkpoints`).Scan(&n); err != nil {
				return fmt.Errorf("count checkpoints: %w", err)
			}
			if n > 0 {
				done = true
				return nil
			}
			c := &chain{id: legacyChain, head: chainHead{hash: auditchain.Genesis(legacyChain)}}
			err := tx.QueryRowContext(ctx, `SELECT chain_seq, hash FROM audit_log WHERE chain_id = ? ORDER BY chain_seq DESC LIMIT 1`,
				legacyChain).Scan(&c.head.seq, &c.head.hash)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("read legacy chain: %w", err)
			}
			var batch []domain.AuditEntry
			err = scanAuditRows(ctx, tx, func(e domain.AuditEntry) { batch = append(batch, e) },
				`SELECT `+auditColumns+` FROM audit_log WHERE chain_id = '' ORDER BY id LIMIT ?`, legacyBatch)
			if err != nil {
				return fmt.Errorf("read unchained rows: %w", err)
			}
			for i := range batch {
				c.link(&batch[i])
				l := batch[i].Chain
				if _, err := tx.ExecContext(ctx, `UPDATE audit_log SET chain_id = ?, chain_seq = ?, prev_hash = ?, hash = ? WHERE id = ?`,
					l.ID, l.Seq, l.PrevHash, l.Hash, batch[i].ID); err != nil {
					return fmt.Errorf("chain row %s: %w", batch[i].ID, err)
				}
			}
			if len(batch) == legacyBatch {
				return nil
			}
			done = true
			return s.addCheckpoints(ctx, tx, auditchain.KindClose, []string{legacyChain}, []chainHead{c.head})
		})
		if err != nil || done {
			return err
		}
	}
}

// AuditCheckpoints returns every checkpoint, in order.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]auditchain.Checkpoint, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, kind, chain_id, chain_seq, head_hash, created_at, key_id, prev_mac, mac
		FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	defer rows.Close()
	var out []auditchain.Checkpoint
	for rows.Next() {
		var c auditchain.Checkpoint
		var at int64
		if err := rows.Scan(&c.Seq, &c.Kind, &c.ChainID, &c.ChainSeq, &c.HeadHash, &at, &c.KeyID, &c.PrevMAC, &c.MAC); err != nil {
			return nil, fmt.Errorf("read checkpoints: %w", err)
		}
		c.CreatedAt = fromMillis(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// VerifyAudit walks every chain and checkpoint and reports what does not
// hold. keys are the checkpoint keys to accept (CheckpointKeys); none
// checks the chains and the checkpoints' links but not their signatures.
// Memory does not grow with the number of rows.
func (s *Store) VerifyAudit(ctx context.Context, keys auditchain.Keys) (auditchain.Report, error) {
	cps, err := s.AuditCheckpoints(ctx)
	if err != nil {
		return auditchain.Report{}, err
	}
	v := auditchain.NewVerifier(cps, keys)
	var after struct {
		chain string
		seq   int64
		id    string
	}
	first := true
	for {
		q := `SELECT ` + auditColumns + ` FROM audit_log`
		var args []any
		if !first {
			q += ` WHERE (chain_id, chain_seq, id) > (?, ?, ?)`
			args = append(args, after.chain, after.seq, after.id)
		}
		n := 0
		err := scanAuditRows(ctx, s.r, func(e domain.AuditEntry) {
			v.Row(e)
			after.chain, after.seq, after.id = e.Chain.ID, e.Chain.Seq, e.ID
			n++
		}, q+` ORDER BY chain_id, chain_seq, id LIMIT ?`, append(args, exportPage)...)
		if err != nil {
			return auditchain.Report{}, fmt.Errorf("read audit rows: %w", err)
		}
		if n < exportPage {
			return v.Finish(), nil
		}
		first = false
	}
}

// scanAuditRows calls fn for each audit row query selects.
func scanAuditRows(ctx context.Context, q querier, fn func(domain.AuditEntry), query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return err
		}
		fn(e)
	}
	return rows.Err()
}
