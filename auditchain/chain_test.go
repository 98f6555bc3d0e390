package auditchain

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

func entry() domain.AuditEntry {
	return domain.AuditEntry{ID: "aud_1", Kind: domain.KindDecision, AgentID: "agt_1", OwnerID: "alice", Action: "read",
		Resource: "mcp:github:repos", Arguments: json.RawMessage(`{"path": "<src>&", "n": 1}`), Result: domain.ResultAllowed,
		Code: "allowed", Reason: "ok", IP: "127.0.0.1", UserAgent: "ua", DurationUS: 42, ApprovalID: "",
		Timestamp: time.UnixMilli(1767225600123).UTC(), Actor: domain.Actor{Type: "key", ID: "key_1", Name: "app"}}
}

// The bytes hashed are a published format (exports are verified offline):
// this vector changes only with a new version tag.
func TestHashIsStable(t *testing.T) {
	e := entry()
	Link(&e, "chn_1", 1, Genesis("chn_1"))
	// Computed independently (Python) from the format documented in chain.go.
	const want = "bab0464da252a9676eb218f576dbfe8a89a66dc7b14d858f65723dfb559979c2"
	if e.Chain.Hash != want {
		t.Errorf("hash = %s; want %s (a change of the hashed format breaks every stored chain)", e.Chain.Hash, want)
	}
}

// Every field is covered: changing any one changes the hash; re-spacing
// the JSON does not.
func TestHashCoversEveryField(t *testing.T) {
	base := entry()
	Link(&base, "chn_1", 1, "p")
	edits := map[string]func(*domain.AuditEntry){
		"id": func(e *domain.AuditEntry) { e.ID = "aud_2" }, "kind": func(e *domain.AuditEntry) { e.Kind = domain.KindEvent },
		"agent": func(e *domain.AuditEntry) { e.AgentID = "agt_2" }, "owner": func(e *domain.AuditEntry) { e.OwnerID = "bob" },
		"action": func(e *domain.AuditEntry) { e.Action = "write" }, "resource": func(e *domain.AuditEntry) { e.Resource = "x" },
		"arguments":    func(e *domain.AuditEntry) { e.Arguments = json.RawMessage(`{"n":2}`) },
		"no arguments": func(e *domain.AuditEntry) { e.Arguments = nil },
		"result":       func(e *domain.AuditEntry) { e.Result = domain.ResultDenied }, "code": func(e *domain.AuditEntry) { e.Code = "x" },
		"reason": func(e *domain.AuditEntry) { e.Reason = "x" }, "ip": func(e *domain.AuditEntry) { e.IP = "10.0.0.1" },
		"user agent": func(e *domain.AuditEntry) { e.UserAgent = "x" }, "duration": func(e *domain.AuditEntry) { e.DurationUS = 43 },
		"approval": func(e *domain.AuditEntry) { e.ApprovalID = "apr_1" },
		"time":     func(e *domain.AuditEntry) { e.Timestamp = e.Timestamp.Add(time.Millisecond) },
		"actor":    func(e *domain.AuditEntry) { e.Actor.Type = "agent" }, "actor id": func(e *domain.AuditEntry) { e.Actor.ID = "x" },
		"actor name": func(e *domain.AuditEntry) { e.Actor.Name = "x" }, "on behalf": func(e *domain.AuditEntry) { e.Actor.OnBehalfOf = "x" },
		"changes": func(e *domain.AuditEntry) { e.Changes = json.RawMessage(`{}`) },
		"chain":   func(e *domain.AuditEntry) { e.Chain.ID = "chn_2" }, "seq": func(e *domain.AuditEntry) { e.Chain.Seq = 2 },
		"prev": func(e *domain.AuditEntry) { e.Chain.PrevHash = "q" },
		// Field boundaries are part of the hash: moving a byte across one changes it.
		"boundary": func(e *domain.AuditEntry) { e.Action, e.Resource = "readm", "cp:github:repos" },
	}
	for name, edit := range edits {
		e := base
		edit(&e)
		if Hash(e) == base.Chain.Hash {
			t.Errorf("changing %s leaves the hash as it was", name)
		}
	}
	e := base
	var spaced bytes.Buffer
	_ = json.Indent(&spaced, e.Arguments, "", "    ")
	e.Arguments = spaced.Bytes()
	if Hash(e) != base.Chain.Hash {
		t.Error("re-spacing the arguments changes the hash")
	}
}

// An export (JSON, as the sidecar writes it) verifies offline, and an edit
// of any row in it is found.
func TestExportVerifiesOffline(t *testing.T) {
	var rows []domain.AuditEntry
	prev := Genesis("chn_1")
	for i := range 5 {
		e := entry()
		e.ID = "aud_" + string(rune('a'+i))
		Link(&e, "chn_1", int64(i+1), prev)
		prev = e.Chain.Hash
		rows = append(rows, e)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rows); err != nil {
		t.Fatal(err)
	}
	var back []domain.AuditEntry
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if r := VerifyRows(back, nil, nil, false); !r.OK() || r.Rows != 5 {
		t.Fatalf("untouched export: %+v", r)
	}
	back[2].Reason = "edited"
	if r := VerifyRows(back, nil, nil, false); r.OK() || r.Problems[0].RowID != "aud_c" || r.Problems[0].Kind != Changed {
		t.Fatalf("edited export: %+v", r)
	}
	// A filtered export: gaps are expected with partial, reported without.
	sub := []domain.AuditEntry{rows[0], rows[3]}
	if r := VerifyRows(sub, nil, nil, true); !r.OK() {
		t.Fatalf("filtered export, partial: %+v", r)
	}
	if r := VerifyRows(sub, nil, nil, false); r.OK() || r.Problems[0].Kind != Deleted {
		t.Fatalf("filtered export, not partial: %+v", r)
	}
}

func TestCheckpointSignatures(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a := Checkpoint{Seq: 1, Kind: KindClose, ChainID: LegacyChain, ChainSeq: 3, HeadHash: "h", CreatedAt: time.UnixMilli(5)}
	a.Sign("k1", key)
	b := Checkpoint{Seq: 2, Kind: KindClose, ChainID: "chn_1", ChainSeq: 4, HeadHash: "h2", CreatedAt: time.UnixMilli(6), PrevMAC: a.MAC}
	b.Sign("k1", key)
	keys := Keys{"k1": key}
	if v := NewVerifier([]Checkpoint{b, a}, keys); v.r.Total != 0 || v.r.Signed != 2 {
		t.Fatalf("two good checkpoints: %+v", v.r)
	}
	forged := b
	forged.HeadHash = "other"
	if v := NewVerifier([]Checkpoint{a, forged}, keys); v.r.Total == 0 {
		t.Fatal("a changed checkpoint passed")
	}
	resigned := forged
	resigned.Sign("k2", []byte("not the key, but 32 bytes long!!"))
	if v := NewVerifier([]Checkpoint{a, resigned}, keys); v.r.Total == 0 {
		t.Fatal("a checkpoint signed with another key passed")
	}
	unsigned := forged
	unsigned.Sign("", nil)
	if v := NewVerifier([]Checkpoint{a, unsigned}, keys); v.r.Total == 0 {
		t.Fatal("an unsigned checkpoint after a signed one passed")
	}
}

// BenchmarkHash is what chaining adds per row in the batch writer.
func BenchmarkHash(b *testing.B) {
	e := entry()
	for b.Loop() {
		Link(&e, "chn_01M8T4XBN600E99P853Y3RH5GJ", 12345, "bab0464da252a9676eb218f576dbfe8a89a66dc7b14d858f65723dfb559979c2")
	}
}
