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
	b := appendField(nil, version+" genesis")
	b = appendField(b, chainID)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Hash is the hash of e, from its content and e.Chain's ID, Seq and
// PrevHash (e.Chain.Hash is ignored).
func Hash(e domain.AuditEntry) string {
	var stack [1024]byte
	b := stack[:0]
	var num [20]byte
	b = appendField(b, version)
	b = appendField(b, e.Chain.ID)
	b = appendBytes(b, strconv.AppendInt(num[:0], e.Chain.Seq, 10))
	b = appendField(b, e.Chain.PrevHash)
	b = appendField(b, e.ID)
	b = appendField(b, e.Kind)
	b = appendBytes(b, strconv.AppendInt(num[:0], e.Timestamp.UnixMilli(), 10))
	b = appendField(b, e.AgentID)
	b = appendField(b, e.OwnerID)
	b = appendField(b, e.Action)
	b = appendField(b, e.Resource)
	b = appendJSON(b, e.Arguments)
	b = appendField(b, e.Result)
	b = appendField(b, e.Code)
	b = appendField(b, e.Reason)
	b = appendField(b, e.IP)
	b = appendField(b, e.UserAgent)
	b = appendBytes(b, strconv.AppendInt(num[:0], e.DurationUS, 10))
	b = appendField(b, e.ApprovalID)
	b = appendField(b, e.Actor.Type)
	b = appendField(b, e.Actor.ID)
	b = appendField(b, e.Actor.Name)
	b = appendField(b, e.Actor.OnBehalfOf)
	b = appendJSON(b, e.Changes)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Link sets e.Chain to follow prev (the previous row's hash, or Genesis)
// at position seq of chain id, with its hash.
func Link(e *domain.AuditEntry, id string, seq int64, prev string) {
	e.Chain = domain.ChainLink{ID: id, Seq: seq, PrevHash: prev}
	e.Chain.Hash = Hash(*e)
}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendJSON adds raw compacted, so that the same JSON hashes alike whether
// read from the database or from an export that re-spaced it.
func appendJSON(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(b, 0)
	}
	b = append(b, 1)
	if bytes.ContainsAny(raw, " \t\r\n") {
		var c bytes.Buffer
		if err := json.Compact(&c, raw); err == nil {
			raw = c.Bytes()
		}
	}
	return appendBytes(b, raw)
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

func (c Checkpoint) content() []byte {
	b := appendField(nil, version+" checkpoint")
	b = appendField(b, strconv.FormatInt(c.Seq, 10))
	b = appendField(b, c.Kind)
	b = appendField(b, c.ChainID)
	b = appendField(b, strconv.FormatInt(c.ChainSeq, 10))
	b = appendField(b, c.HeadHash)
	b = appendField(b, strconv.FormatInt(c.CreatedAt.UnixMilli(), 10))
	b = appendField(b, c.KeyID)
	return appendField(b, c.PrevMAC)
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
	h.Write(c.content())
	return hex.EncodeToString(h.Sum(nil))
}

// CheckMAC reports whether c's MAC is right under key (nil: unsigned).
func CheckMAC(c Checkpoint, key []byte) bool {
	return hmac.Equal([]byte(c.mac(key)), []byte(c.MAC))
}
