// Package auditchain makes the audit trail tamper-evident. Every audit row
// belongs to a hash chain: its hash covers its content, its place in the
// chain and the hash of the row before it, so a row changed, deleted,
// inserted or moved breaks the chain where it happened. Each writer (a
// sidecar process, and each transaction slot within it) has chains of its
// own, so replicas never wait for one another to append.
//
// A chain alone does not stop someone with write access to the database
// from rewriting a row and every hash after it. Checkpoints do: at
// intervals, and on shutdown, the writer records each chain's head (its
// last position and hash) in a checkpoint signed with a key derived from
// the operator's secret, and the checkpoints form a chain of their own.
// Without the secret nobody can forge a checkpoint, so a rewritten row
// shows up as a head that no longer matches. Rows appended since the last
// checkpoint are protected by the chain alone; verification reports how
// many there are.
//
// The hash of a row is SHA-256 over the fields below, in this order, each
// as a uvarint length followed by its bytes (numbers in decimal, the time
// in Unix milliseconds; arguments and changes compacted JSON, preceded by
// a byte 1, or a single byte 0 when absent): the version tag
// "kavach-audit-v1", chain ID, position, previous hash, row ID, kind, time,
// agent, owner, action, resource, arguments, result, code, reason, IP,
// user agent, duration (µs), approval ID, actor type, actor ID, actor
// name, on behalf of, changes. The first row of a chain links to
// Genesis(chainID). An export in JSON carries every one of these fields,
// so VerifyRows can check it offline.
package auditchain

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash"
	"strconv"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

const version = "kavach-audit-v1"

// Genesis is the previous hash of a chain's first row.
func Genesis(chainID string) string {
	h := sha256.New()
	field(h, version+" genesis")
	field(h, chainID)
	return hex.EncodeToString(h.Sum(nil))
}

// Hash is the hash of e, from its content and e.Chain's ID, Seq and
// PrevHash (e.Chain.Hash is ignored).
func Hash(e domain.AuditEntry) string {
	h := sha256.New()
	num := func(n int64) { field(h, strconv.FormatInt(n, 10)) }
	field(h, version)
	field(h, e.Chain.ID)
	num(e.Chain.Seq)
	field(h, e.Chain.PrevHash)
	field(h, e.ID)
	field(h, e.Kind)
	num(e.Timestamp.UnixMilli())
	field(h, e.AgentID)
	field(h, e.OwnerID)
	field(h, e.Action)
	field(h, e.Resource)
	jsonField(h, e.Arguments)
	field(h, e.Result)
	field(h, e.Code)
	field(h, e.Reason)
	field(h, e.IP)
	field(h, e.UserAgent)
	num(e.DurationUS)
	field(h, e.ApprovalID)
	field(h, e.Actor.Type)
	field(h, e.Actor.ID)
	field(h, e.Actor.Name)
	field(h, e.Actor.OnBehalfOf)
	jsonField(h, e.Changes)
	return hex.EncodeToString(h.Sum(nil))
}

// Link sets e.Chain to follow prev (the previous row's hash, or Genesis)
// at position seq of chain id, with its hash.
func Link(e *domain.AuditEntry, id string, seq int64, prev string) {
	e.Chain = domain.ChainLink{ID: id, Seq: seq, PrevHash: prev}
	e.Chain.Hash = Hash(*e)
}

func field(h hash.Hash, s string) {
	var buf [binary.MaxVarintLen64]byte
	h.Write(binary.AppendUvarint(buf[:0], uint64(len(s))))
	h.Write([]byte(s))
}

// jsonField hashes raw compacted, so that the same JSON hashes alike
// whether read from the database or from an export that re-spaced it.
func jsonField(h hash.Hash, raw json.RawMessage) {
	if len(raw) == 0 {
		h.Write([]byte{0})
		return
	}
	h.Write([]byte{1})
	var c bytes.Buffer
	if err := json.Compact(&c, raw); err == nil {
		raw = c.Bytes()
	}
	field(h, string(raw))
}

// Checkpoint kinds.
const (
	// KindSeal records a chain's head while its writer runs.
	KindSeal = "seal"
	// KindClose records a chain's last head when its writer stops.
	KindClose = "close"
	// KindPurge records that a chain's rows up to ChainSeq were deleted by
	// retention; HeadHash is the hash of the last row deleted, which the
	// first remaining row links to.
	KindPurge = "purge"
)

// Checkpoint vouches for the head of one chain. Checkpoints are numbered
// 1, 2, … across all writers, and each one's MAC covers the MAC of the one
// before, so none can be dropped or reordered unseen.
type Checkpoint struct {
	Seq       int64
	Kind      string
	ChainID   string
	ChainSeq  int64
	HeadHash  string
	CreatedAt time.Time
	// KeyID names the key that signed it ("" when unsigned: the sidecar
	// ran without a secret and MAC is a plain SHA-256).
	KeyID   string
	PrevMAC string
	MAC     string
}

func (c Checkpoint) content(h hash.Hash) {
	field(h, version+" checkpoint")
	field(h, strconv.FormatInt(c.Seq, 10))
	field(h, c.Kind)
	field(h, c.ChainID)
	field(h, strconv.FormatInt(c.ChainSeq, 10))
	field(h, c.HeadHash)
	field(h, strconv.FormatInt(c.CreatedAt.UnixMilli(), 10))
	field(h, c.KeyID)
	field(h, c.PrevMAC)
}

// Sign sets c.KeyID and c.MAC: an HMAC-SHA256 with key (named keyID), or a
// plain SHA-256 when key is nil.
func (c *Checkpoint) Sign(keyID string, key []byte) {
	c.KeyID = keyID
	if key == nil {
		c.KeyID = ""
	}
	c.MAC = c.mac(key)
}

func (c Checkpoint) mac(key []byte) string {
	var h hash.Hash
	if key == nil {
		h = sha256.New()
	} else {
		h = hmac.New(sha256.New, key)
	}
	c.content(h)
	return hex.EncodeToString(h.Sum(nil))
}
