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
const legacyChain = auditchain.LegacyChain

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
// checkpoint (all: every chain with rows), with that head.
func (cs *chains) unsealed(all bool) ([]*chain, []chainHead) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var list []*chain
	var heads []chainHead
	for _, c := range cs.all {
		if h := c.committed.Load(); h.seq > c.sealed || (all && h.seq > 0) {
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
	s.linkAudit(tx, e)
	return insertAuditRow(ctx, tx, *e)
}

// linkAudit places e in the chain tx holds, leasing one on the first row.
func (s *Store) linkAudit(tx *txn, e *domain.AuditEntry) {
	if tx.chain == nil {
		tx.chain, tx.leased = s.chains.lease(), true
	}
	tx.chain.link(e)
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

// ErrCheckpoints says the checkpoints in the database are not what this
// process wrote or can vouch for: nothing is signed over them.
var ErrCheckpoints = errors.New("the audit checkpoints were tampered with")

// addCheckpoints appends checkpoints for heads (one per chain in ids)
// under the checkpoint lock, signing each and linking it to the last. It
// signs nothing over a last checkpoint it cannot vouch for: one whose MAC
// does not check under the keys this process has, one older than a
// checkpoint this process has already seen, or none at all unless legacy
// (the upgrade's first checkpoint). It returns the last one written.
func (s *Store) addCheckpoints(ctx context.Context, tx *txn, todo []pendingCheckpoint, legacy bool) (auditchain.Checkpoint, error) {
	if err := s.dialect.advisoryLock(ctx, tx, globalLock(lockCheckpoints)); err != nil {
		return auditchain.Checkpoint{}, fmt.Errorf("lock checkpoints: %w", err)
	}
	var last auditchain.Checkpoint
	var at int64
	err := tx.QueryRowContext(ctx, `SELECT seq, kind, chain_id, chain_seq, head_hash, created_at, key_id, prev_mac, mac
		FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`).Scan(&last.Seq, &last.Kind, &last.ChainID, &last.ChainSeq,
		&last.HeadHash, &at, &last.KeyID, &last.PrevMAC, &last.MAC)
	last.CreatedAt = fromMillis(at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if !legacy {
			return last, fmt.Errorf("%w: there are none, though the upgrade writes the first (run kavach audit verify)", ErrCheckpoints)
		}
	case err != nil:
		return last, fmt.Errorf("read last checkpoint: %w", err)
	default:
		if err := s.vouch(last); err != nil {
			return last, err
		}
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	for _, p := range todo {
		cp := auditchain.Checkpoint{Seq: last.Seq + 1, Kind: p.kind, ChainID: p.chain, ChainSeq: p.head.seq,
			HeadHash: p.head.hash, CreatedAt: now, PrevMAC: last.MAC}
		cp.Sign(s.cpKey.id, s.cpKey.key)
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, kind, chain_id, chain_seq, head_hash, created_at, key_id, prev_mac, mac)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, cp.Seq, cp.Kind, cp.ChainID, cp.ChainSeq, cp.HeadHash, toMillis(cp.CreatedAt),
			cp.KeyID, cp.PrevMAC, cp.MAC); err != nil {
			return last, fmt.Errorf("write checkpoint: %w", err)
		}
		last = cp
	}
	return last, nil
}

// pendingCheckpoint is a checkpoint to write: its kind, chain and head.
type pendingCheckpoint struct {
	kind, chain string
	head        chainHead
}

// vouch checks the last checkpoint in the database before anything is
// signed over it.
func (s *Store) vouch(last auditchain.Checkpoint) error {
	s.cpMu.Lock()
	seen := s.lastCP
	s.cpMu.Unlock()
	switch {
	case last.Seq < seen.Seq, last.Seq == seen.Seq && last.MAC != seen.MAC:
		return fmt.Errorf("%w: this process saw checkpoint %d, the database now ends at %d", ErrCheckpoints, seen.Seq, last.Seq)
	case last.KeyID == "":
		// Unsigned: the sidecar ran without a secret (verify refuses an
		// unsigned checkpoint after a signed one).
		if !auditchain.CheckMAC(last, nil) {
			return fmt.Errorf("%w: checkpoint %d does not match its hash", ErrCheckpoints, last.Seq)
		}
	default:
		key, ok := s.cpKeys[last.KeyID]
		if !ok {
			return fmt.Errorf("%w: checkpoint %d is signed with key %s, which is not this sidecar's secret's", ErrCheckpoints, last.Seq, last.KeyID)
		}
		if !auditchain.CheckMAC(last, key) {
			return fmt.Errorf("%w: checkpoint %d does not match its signature", ErrCheckpoints, last.Seq)
		}
	}
	s.noteCheckpoint(last)
	return nil
}

// noteCheckpoint remembers the newest checkpoint this process has seen or
// written, so that one deleted later is noticed.
func (s *Store) noteCheckpoint(c auditchain.Checkpoint) {
	s.cpMu.Lock()
	if c.Seq > s.lastCP.Seq {
		s.lastCP = c
	}
	s.cpMu.Unlock()
}

// Seal checkpoints every chain of this process that moved since its last
// checkpoint. The sealer calls it periodically; Close once more.
func (s *Store) Seal(ctx context.Context) error { return s.seal(ctx, false) }

// seal checkpoints the chains that moved; closing, every chain with rows,
// as closed (rows after a close are not this process's), except retired
// chains, whose rows after their head are in doubt.
func (s *Store) seal(ctx context.Context, closing bool) error {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	list, heads := s.chains.unsealed(closing)
	if len(list) == 0 {
		return nil
	}
	todo := make([]pendingCheckpoint, len(list))
	for i, c := range list {
		todo[i] = pendingCheckpoint{kind: auditchain.KindSeal, chain: c.id, head: heads[i]}
		if closing && !c.retired.Load() {
			todo[i].kind = auditchain.KindClose
		}
	}
	var last auditchain.Checkpoint
	err := s.withTx(ctx, func(tx *txn) error {
		var err error
		last, err = s.addCheckpoints(ctx, tx, todo, false)
		return err
	})
	if err != nil {
		return err
	}
	s.noteCheckpoint(last)
	for i, c := range list {
		c.sealed = heads[i].seq
	}
	// An anchor outside the database: the newest checkpoint's number and
	// MAC (not a secret; it proves nothing without the key).
	level := slog.LevelDebug
	if closing {
		level = slog.LevelInfo
	}
	s.logger().Log(ctx, level, "audit checkpoint", "seq", last.Seq, "mac", last.MAC, "chains", len(list))
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
			log.Error("audit checkpoint failed; retrying at the next interval", "error", err)
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
	purgeBatch = 20000
)

// PurgeAudit deletes the audit rows older than before: for each chain, a
// prefix of positions whose rows are all older than before and all sealed
// by a checkpoint, in transactions that each leave a purge checkpoint, so
// that verification still passes. Before deleting, it checks the prefix
// against the chain's checkpoints: rows rewritten (say, made to look old)
// are never purged, and the error says so. It returns how many rows it
// deleted.
func (s *Store) PurgeAudit(ctx context.Context, before time.Time) (int64, error) {
	var chains []string
	err := scanStrings(ctx, s.r, &chains, `SELECT DISTINCT chain_id FROM audit_log WHERE chain_id <> '' AND created_at < ? ORDER BY chain_id`,
		toMillis(before))
	if err != nil {
		return 0, fmt.Errorf("find rows to purge: %w", err)
	}
	var total int64
	for _, id := range chains {
		for {
			var n int64
			var last auditchain.Checkpoint
			err := s.withTx(ctx, func(tx *txn) error {
				var err error
				n, last, err = s.purgeChain(ctx, tx, id, before)
				return err
			})
			if err != nil {
				return total, err
			}
			if n == 0 {
				break
			}
			s.noteCheckpoint(last)
			total += n
		}
	}
	return total, nil
}

// purgeChain deletes one batch of chain id's old, sealed prefix in tx.
func (s *Store) purgeChain(ctx context.Context, tx *txn, id string, before time.Time) (int64, auditchain.Checkpoint, error) {
	if err := s.dialect.advisoryLock(ctx, tx, globalLock(lockCheckpoints)); err != nil {
		return 0, auditchain.Checkpoint{}, fmt.Errorf("lock checkpoints: %w", err)
	}
	cps, err := s.chainCheckpoints(ctx, tx, id)
	if err != nil {
		return 0, auditchain.Checkpoint{}, err
	}
	// Where the chain starts now, and the last position a checkpoint seals.
	start, prev, sealed := int64(0), auditchain.Genesis(id), int64(0)
	for _, c := range cps {
		if c.Kind == auditchain.KindPurge && c.ChainSeq > start {
			start, prev = c.ChainSeq, c.HeadHash
		} else if c.Kind != auditchain.KindPurge {
			sealed = max(sealed, c.ChainSeq)
		}
	}
	// The prefix: up to the first row that is not old, and no further than
	// a checkpoint seals.
	var rows []domain.AuditEntry
	err = scanAuditRows(ctx, tx, func(e domain.AuditEntry) { rows = append(rows, e) },
		`SELECT `+auditColumns+` FROM audit_log WHERE chain_id = ? AND chain_seq > ? AND chain_seq <= ? ORDER BY chain_seq, id LIMIT ?`,
		id, start, sealed, purgeBatch)
	if err != nil {
		return 0, auditchain.Checkpoint{}, fmt.Errorf("read rows to purge: %w", err)
	}
	upTo, head, lastRead, link := start, prev, start, prev
	for _, e := range rows {
		if e.Chain.Seq != lastRead+1 || e.Chain.PrevHash != link || auditchain.Hash(e) != e.Chain.Hash {
			return 0, auditchain.Checkpoint{}, fmt.Errorf("%w: chain %s does not verify at position %d (row %s): nothing purged (run kavach audit verify)",
				ErrCheckpoints, id, e.Chain.Seq, e.ID)
		}
		lastRead, link = e.Chain.Seq, e.Chain.Hash
	}
	// Every checkpoint among the rows read must match them (else the rows
	// were rewritten and re-hashed), and only a prefix a checkpoint vouches
	// for, whose rows are all old, is deleted.
	vouched := start
	for _, c := range cps {
		if c.Kind == auditchain.KindPurge || c.ChainSeq <= start || c.ChainSeq > lastRead {
			continue
		}
		if !sealsRow(rows, c) {
			return 0, auditchain.Checkpoint{}, fmt.Errorf("%w: checkpoint %d does not match chain %s: nothing purged (run kavach audit verify)",
				ErrCheckpoints, c.Seq, id)
		}
		vouched = max(vouched, c.ChainSeq)
	}
	for _, e := range rows {
		if e.Chain.Seq > vouched || !e.Timestamp.Before(before) {
			break
		}
		upTo, head = e.Chain.Seq, e.Chain.Hash
	}
	if upTo == start {
		return 0, auditchain.Checkpoint{}, nil
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE chain_id = ? AND chain_seq <= ?`, id, upTo)
	if err != nil {
		return 0, auditchain.Checkpoint{}, fmt.Errorf("purge audit rows: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, auditchain.Checkpoint{}, fmt.Errorf("purge audit rows: %w", err)
	}
	last, err := s.addCheckpoints(ctx, tx, []pendingCheckpoint{{kind: auditchain.KindPurge, chain: id, head: chainHead{seq: upTo, hash: head}}}, false)
	return n, last, err
}

// sealsRow reports whether checkpoint c's head is the hash of the row at
// its position among rows.
func sealsRow(rows []domain.AuditEntry, c auditchain.Checkpoint) bool {
	for _, e := range rows {
		if e.Chain.Seq == c.ChainSeq {
			return e.Chain.Hash == c.HeadHash
		}
	}
	return false
}

// chainCheckpoints returns the checkpoints of one chain.
func (s *Store) chainCheckpoints(ctx context.Context, q querier, id string) ([]auditchain.Checkpoint, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, kind, chain_id, chain_seq, head_hash, created_at, key_id, prev_mac, mac
		FROM audit_checkpoints WHERE chain_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	defer rows.Close()
	return scanCheckpoints(rows)
}

func scanCheckpoints(rows *sql.Rows) ([]auditchain.Checkpoint, error) {
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

func scanStrings(ctx context.Context, q querier, out *[]string, query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err
		}
		*out = append(*out, v)
	}
	return rows.Err()
}

// legacyBatch is how many rows one legacy-chaining transaction chains.
const legacyBatch = 1000

// chainLegacy chains the rows written before chaining existed, once: only
// while no checkpoint exists, so rows inserted later, outside any chain,
// are never taken in. It ends with a checkpoint of the legacy chain (at
// position 0 when there were no rows), which closes that door.
func (s *Store) chainLegacy(ctx context.Context) error {
	var last auditchain.Checkpoint
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
			// No checkpoint, yet rows of live chains: the checkpoints were
			// deleted. Chaining now would vouch for whatever is there.
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log WHERE chain_id <> '' AND chain_id <> ?`,
				legacyChain).Scan(&n); err != nil {
				return fmt.Errorf("count chained rows: %w", err)
			}
			if n > 0 {
				return fmt.Errorf("%w: none is left, yet %d rows are chained; nothing will be signed (run kavach audit verify)", ErrCheckpoints, n)
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
			last, err = s.addCheckpoints(ctx, tx, []pendingCheckpoint{{kind: auditchain.KindClose, chain: legacyChain, head: c.head}}, true)
			return err
		})
		if err != nil || done {
			if err == nil && last.Seq > 0 {
				s.noteCheckpoint(last)
			}
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
	return scanCheckpoints(rows)
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
	if s.dialect.name() == "sqlite" {
		// SQLite keeps any value in any column: a value stored as a BLOB
		// reads back as the same string (so its hash holds) but escapes
		// every filter that compares text, and would stall the walk below.
		var odd []string
		err := scanStrings(ctx, s.r, &odd, `SELECT id FROM audit_log WHERE typeof(id) <> 'text' OR typeof(chain_id) <> 'text'
			OR typeof(agent_id) <> 'text' OR typeof(owner_id) <> 'text' OR typeof(action) <> 'text' OR typeof(resource) <> 'text'
			OR typeof(result) <> 'text' OR typeof(code) <> 'text' OR typeof(kind) <> 'text' OR typeof(actor_id) <> 'text'
			OR typeof(created_at) <> 'integer' OR typeof(chain_seq) <> 'integer' LIMIT 100`)
		if err != nil {
			return auditchain.Report{}, fmt.Errorf("check column types: %w", err)
		}
		for _, id := range odd {
			v.Report(auditchain.Problem{Kind: auditchain.Changed, RowID: string(id),
				Message: fmt.Sprintf("row %s holds a value stored as another type, which hides it from queries: it was changed", id)})
		}
		if len(odd) > 0 {
			// The walk below cannot page past such values.
			return v.Finish(), nil
		}
	}
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
		prev := after
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
		if !first && after == prev {
			return auditchain.Report{}, fmt.Errorf("read audit rows: the walk did not advance past chain %s position %d", after.chain, after.seq)
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
