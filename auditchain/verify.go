package auditchain

import (
	"crypto/hmac"
	"fmt"
	"sort"

	"github.com/kavach-dev/kavach/domain"
)

// Kinds of problem verification finds.
const (
	// Changed: a row's content no longer matches its hash.
	Changed = "changed"
	// Deleted: rows are missing from a chain (a gap, a cut-off end, a
	// whole chain gone, or a checkpoint gone).
	Deleted = "deleted"
	// Inserted: a row outside any chain, or a second row at a position.
	Inserted = "inserted"
	// Reordered: a row does not link to the row before it.
	Reordered = "reordered"
	// Rewritten: a chain hashes consistently but no longer ends where a
	// checkpoint sealed it: rows were rewritten and re-hashed.
	Rewritten = "rewritten"
	// Forged: a checkpoint is not signed by the secret, or does not link
	// to the checkpoint before it.
	Forged = "forged"
)

// maxProblems caps the problems a report lists; Report.Total counts all.
const maxProblems = 100

// LegacyChain holds the rows written before chaining existed; its close
// checkpoint, written by the upgrade, is always checkpoint 1.
const LegacyChain = "chn_legacy"

// Problem is one place where the trail is not as it was written.
type Problem struct {
	Kind    string `json:"kind"`
	RowID   string `json:"rowId,omitempty"`
	ChainID string `json:"chainId,omitempty"`
	Seq     int64  `json:"seq,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string { return p.Kind + ": " + p.Message }

// Keys are the checkpoint keys verification accepts, by key ID.
type Keys map[string][]byte

// Report is the outcome of a verification.
type Report struct {
	Rows        int64 `json:"rows"`
	Chains      int64 `json:"chains"`
	Checkpoints int64 `json:"checkpoints"`
	// Signed counts the checkpoints whose signature was checked.
	Signed int64 `json:"signed"`
	// Unsealed counts rows written after their chain's last checkpoint:
	// vouched for by the chain alone.
	Unsealed int64 `json:"unsealed"`
	// Unchecked counts signed checkpoints whose signature was not checked
	// (no secret given).
	Unchecked int64 `json:"uncheckedSignatures"`
	// Purged counts chains that retention has cut.
	Purged   int64     `json:"purgedChains"`
	Problems []Problem `json:"problems"`
	// Total counts every problem found; Problems lists the first ones.
	Total int64    `json:"totalProblems"`
	Notes []string `json:"notes,omitempty"`
}

// OK reports whether the trail is intact.
func (r Report) OK() bool { return r.Total == 0 }

func (r *Report) add(p Problem) {
	r.Total++
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
	}
}

// Verifier checks a trail: the checkpoints first (NewVerifier), then the
// rows, grouped by chain in ascending position (Row), then Finish.
type Verifier struct {
	r      Report
	seals  map[string][]Checkpoint // per chain, by ChainSeq
	purges map[string]Checkpoint   // the latest purge per chain
	seen   map[string]bool

	// gaps: the rows are a filtered selection (an export with filters),
	// so missing positions are expected and only counted.
	gaps bool
	// offline: no checkpoints (an export checked alone), so a chain may
	// start past position 1 (retention purged the rows before).
	offline bool
	starts  int64
	chain   string
	started bool
	next    int64
	prev    string
	last    int64
	cps     []Checkpoint
	// closedAt is the position the current chain's close checkpoint
	// covers (-1 when the chain was not closed).
	closedAt int64
}

// NewVerifier checks the checkpoints (any order) and prepares to check
// rows against them. With keys, every checkpoint after the first signed
// one must be signed by one of them, and at least one must be; without,
// signatures are not checked (a note says so).
func NewVerifier(cps []Checkpoint, keys Keys) *Verifier {
	v := &Verifier{seals: map[string][]Checkpoint{}, purges: map[string]Checkpoint{}, seen: map[string]bool{}}
	sort.Slice(cps, func(i, j int) bool { return cps[i].Seq < cps[j].Seq })
	v.r.Checkpoints = int64(len(cps))
	if len(cps) > 0 && cps[0].Seq == 1 && (cps[0].ChainID != LegacyChain || cps[0].Kind != KindClose) {
		v.r.add(Problem{Kind: Forged, Message: "checkpoint 1 is not the one the upgrade wrote for the rows before chaining: the checkpoints were deleted and replaced"})
	}
	prevMAC, signed, unchecked := "", false, false
	for i, c := range cps {
		want := int64(i + 1)
		if c.Seq != want {
			v.r.add(Problem{Kind: Deleted, Message: fmt.Sprintf("checkpoint %d is missing (the next is %d): checkpoints were deleted", want, c.Seq)})
			prevMAC = c.PrevMAC // resynchronise, to report what follows
		}
		if c.PrevMAC != prevMAC {
			v.r.add(Problem{Kind: Forged, ChainID: c.ChainID, Message: fmt.Sprintf("checkpoint %d does not follow checkpoint %d: checkpoints were changed, inserted or reordered", c.Seq, c.Seq-1)})
		}
		prevMAC = c.MAC
		switch {
		case c.KeyID == "":
			if signed && len(keys) > 0 {
				v.r.add(Problem{Kind: Forged, ChainID: c.ChainID, Message: fmt.Sprintf("checkpoint %d is unsigned after signed ones: it was forged", c.Seq)})
			} else if !hmac.Equal([]byte(c.mac(nil)), []byte(c.MAC)) {
				v.r.add(Problem{Kind: Forged, ChainID: c.ChainID, Message: fmt.Sprintf("checkpoint %d does not match its hash: it was changed", c.Seq)})
			}
		case len(keys) == 0:
			unchecked = true
			v.r.Unchecked++
		default:
			key, ok := keys[c.KeyID]
			switch {
			case !ok:
				v.r.add(Problem{Kind: Forged, ChainID: c.ChainID, Message: fmt.Sprintf("checkpoint %d is signed with key %s, which is not the current or previous secret's", c.Seq, c.KeyID)})
			case !hmac.Equal([]byte(c.mac(key)), []byte(c.MAC)):
				v.r.add(Problem{Kind: Forged, ChainID: c.ChainID, Message: fmt.Sprintf("checkpoint %d does not match its signature: it was changed or forged", c.Seq)})
			default:
				v.r.Signed++
			}
			signed = true
		}
		if c.Kind == KindPurge {
			if p, ok := v.purges[c.ChainID]; !ok || c.ChainSeq > p.ChainSeq {
				v.purges[c.ChainID] = c
			}
			continue
		}
		v.seals[c.ChainID] = append(v.seals[c.ChainID], c)
	}
	for _, list := range v.seals {
		sort.SliceStable(list, func(i, j int) bool { return list[i].ChainSeq < list[j].ChainSeq })
	}
	v.r.Purged = int64(len(v.purges))
	if unchecked {
		v.r.Notes = append(v.r.Notes, "checkpoint signatures were not checked: give the secret (KAVACH_SECRET) to check them")
	}
	if len(keys) > 0 && v.r.Signed == 0 {
		v.r.add(Problem{Kind: Forged, Message: "no checkpoint is signed with the secret given: the trail cannot be vouched for"})
	}
	if len(keys) == 0 && len(cps) > 0 && !unchecked {
		v.r.Notes = append(v.r.Notes, "checkpoints are unsigned (the sidecar ran without a secret): they show accidents, not a determined rewrite")
	}
	return v
}

// Report adds a problem found outside the rows and checkpoints (say, a
// value of another storage type).
func (v *Verifier) Report(p Problem) { v.r.add(p) }

// Row checks the next row. Rows come grouped by chain ID (rows with no
// chain first), in ascending position within each chain.
func (v *Verifier) Row(e domain.AuditEntry) {
	v.r.Rows++
	c := e.Chain
	if c.ID == "" {
		v.r.add(Problem{Kind: Inserted, RowID: e.ID, Message: fmt.Sprintf("row %s belongs to no chain: it was inserted", e.ID)})
		return
	}
	if c.ID != v.chain || !v.started {
		v.endChain()
		v.beginChain(c.ID)
	}
	if v.offline && v.last == 0 && v.next == 1 && c.Seq > 1 {
		v.next, v.prev = c.Seq, c.PrevHash
		v.starts++
	}
	if v.closedAt >= 0 && c.Seq > v.closedAt {
		v.r.add(Problem{Kind: Inserted, RowID: e.ID, ChainID: c.ID, Seq: c.Seq,
			Message: fmt.Sprintf("row %s follows position %d, where chain %s was closed when its writer stopped: it was inserted", e.ID, v.closedAt, c.ID)})
		return
	}
	switch {
	case c.Seq < v.next:
		v.r.add(Problem{Kind: Inserted, RowID: e.ID, ChainID: c.ID, Seq: c.Seq,
			Message: fmt.Sprintf("row %s takes position %d of chain %s, which another row holds or retention deleted: it was inserted", e.ID, c.Seq, c.ID)})
		return
	case c.Seq > v.next && v.gaps:
		v.prev = c.PrevHash
	case c.Seq > v.next:
		v.r.add(Problem{Kind: Deleted, RowID: e.ID, ChainID: c.ID, Seq: c.Seq,
			Message: fmt.Sprintf("rows %s of chain %s are missing before row %s: they were deleted", span(v.next, c.Seq-1), c.ID, e.ID)})
		v.prev = c.PrevHash
	}
	got := Hash(e)
	switch {
	case got != c.Hash:
		v.r.add(Problem{Kind: Changed, RowID: e.ID, ChainID: c.ID, Seq: c.Seq,
			Message: fmt.Sprintf("row %s (position %d of chain %s) does not match its hash: it was changed", e.ID, c.Seq, c.ID)})
	case c.PrevHash != v.prev:
		v.r.add(Problem{Kind: Reordered, RowID: e.ID, ChainID: c.ID, Seq: c.Seq,
			Message: fmt.Sprintf("row %s (position %d of chain %s) does not follow the row before it: rows were inserted, reordered or replaced", e.ID, c.Seq, c.ID)})
	}
	for len(v.cps) > 0 && v.cps[0].ChainSeq <= c.Seq {
		cp := v.cps[0]
		v.cps = v.cps[1:]
		if cp.ChainSeq == c.Seq && cp.HeadHash != got {
			v.r.add(Problem{Kind: Rewritten, RowID: e.ID, ChainID: c.ID, Seq: c.Seq,
				Message: fmt.Sprintf("checkpoint %d sealed chain %s at position %d with another hash than row %s has: rows up to it were rewritten", cp.Seq, c.ID, c.Seq, e.ID)})
		}
	}
	v.prev, v.next, v.last = c.Hash, c.Seq+1, c.Seq
}

func (v *Verifier) beginChain(id string) {
	v.chain, v.started = id, true
	v.seen[id] = true
	v.r.Chains++
	v.next, v.prev, v.last = 1, Genesis(id), 0
	v.cps = v.seals[id]
	v.closedAt = -1
	for _, cp := range v.cps {
		if cp.Kind == KindClose {
			v.closedAt = cp.ChainSeq
		}
	}
	if p, ok := v.purges[id]; ok {
		v.next, v.prev, v.last = p.ChainSeq+1, p.HeadHash, p.ChainSeq
		for len(v.cps) > 0 && v.cps[0].ChainSeq <= p.ChainSeq {
			v.cps = v.cps[1:]
		}
	}
}

// endChain checks that the chain reaches its last checkpoint.
func (v *Verifier) endChain() {
	if !v.started {
		return
	}
	sealed := int64(0)
	if n := len(v.seals[v.chain]); n > 0 {
		sealed = v.seals[v.chain][n-1].ChainSeq
	}
	if len(v.cps) > 0 && !v.gaps {
		cp := v.cps[len(v.cps)-1]
		v.r.add(Problem{Kind: Deleted, ChainID: v.chain, Seq: v.last + 1,
			Message: fmt.Sprintf("chain %s ends at position %d but checkpoint %d sealed it at %d: rows %s were deleted", v.chain, v.last, cp.Seq, cp.ChainSeq, span(v.last+1, cp.ChainSeq))})
	}
	if v.last > sealed {
		v.r.Unsealed += v.last - max(sealed, v.purges[v.chain].ChainSeq)
	}
	v.started = false
}

// Finish checks what no row was left to show (chains with every row
// gone) and returns the report.
func (v *Verifier) Finish() Report {
	v.endChain()
	if v.r.Checkpoints == 0 && v.r.Rows > 0 && !v.offline {
		v.r.add(Problem{Kind: Deleted, Message: "the trail has rows but no checkpoint: the checkpoints were deleted"})
	}
	ids := make([]string, 0, len(v.seals))
	for id := range v.seals {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if v.seen[id] {
			continue
		}
		list := v.seals[id]
		last := list[len(list)-1]
		if last.ChainSeq > v.purges[id].ChainSeq {
			v.r.add(Problem{Kind: Deleted, ChainID: id, Seq: v.purges[id].ChainSeq + 1,
				Message: fmt.Sprintf("chain %s has no rows left but checkpoint %d sealed it at position %d: rows %s were deleted", id, last.Seq, last.ChainSeq, span(v.purges[id].ChainSeq+1, last.ChainSeq))})
		}
	}
	return v.r
}

func span(from, to int64) string {
	if from == to {
		return fmt.Sprint(from)
	}
	return fmt.Sprintf("%d to %d", from, to)
}

// VerifyRows checks rows in any order (an export) against checkpoints
// (none, for an export alone): it sorts them by chain and position first.
// With partial, the rows are a filtered selection: positions missing
// between them are expected, and each row is checked against its own hash
// and, where its predecessor is present, its link.
func VerifyRows(rows []domain.AuditEntry, cps []Checkpoint, keys Keys, partial bool) Report {
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i].Chain, rows[j].Chain
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Seq < b.Seq
	})
	v := NewVerifier(cps, keys)
	v.gaps, v.offline = partial, len(cps) == 0
	for _, e := range rows {
		v.Row(e)
	}
	r := v.Finish()
	if v.starts > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d chains start past their first row (rows purged by retention, or left out of the export): "+
			"without the checkpoints, what came before cannot be checked; verify the database for that", v.starts))
	}
	return r
}
