package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/auditchain"
	"github.com/kavach-dev/kavach/domain"
)

// A row's hash covers its time in Unix milliseconds (auditchain), and an
// export writes times to the millisecond (api.TimeFormat): the export
// holds all the hash covers, whatever the fraction (none, .3, or finer
// than the database keeps), so it verifies offline; a time moved by one
// millisecond does not.
func TestMillisecondExportVerifies(t *testing.T) {
	fixedWidth := regexp.MustCompile(`"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)
	base := time.Date(2026, 11, 23, 19, 12, 29, 0, time.UTC)
	var buf bytes.Buffer
	buf.WriteString("[")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	prev := auditchain.Genesis("chn_1")
	for i, ts := range []time.Time{base, base.Add(300 * time.Millisecond), base.Add(250 * time.Millisecond),
		base.Add(123_456_789), base.In(time.FixedZone("", 3600)).Add(time.Second)} {
		e := domain.AuditEntry{ID: "aud_" + string(rune('a'+i)), Kind: domain.KindDecision, AgentID: "agt_1", Action: "read",
			Resource: "mcp:github:repos", Result: domain.ResultAllowed, Code: "allowed", Timestamp: ts,
			Actor: domain.Actor{Type: "key", ID: "key_1"}}
		auditchain.Link(&e, "chn_1", int64(i+1), prev)
		prev = e.Chain.Hash
		if i > 0 {
			buf.WriteString(",")
		}
		// As the sidecar writes an export row (core.APIAuditEntry).
		if err := enc.Encode(api.AuditEntry{ID: e.ID, Kind: e.Kind, AgentID: e.AgentID, Action: e.Action, Resource: e.Resource,
			Result: e.Result, Code: e.Code, Timestamp: api.NewTime(e.Timestamp), Actor: api.Actor(e.Actor),
			ChainID: e.Chain.ID, ChainSeq: e.Chain.Seq, PrevHash: e.Chain.PrevHash, Hash: e.Chain.Hash}); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString("]\n")
	if n := len(fixedWidth.FindAll(buf.Bytes(), -1)); n != 5 {
		t.Fatalf("%d fixed-width timestamps in the export; want 5:\n%s", n, buf.String())
	}
	path := filepath.Join(t.TempDir(), "export.json")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rows, err := readExport(path)
	if err != nil {
		t.Fatal(err)
	}
	if r := auditchain.VerifyRows(rows, nil, nil, false); !r.OK() || r.Rows != 5 {
		t.Fatalf("VerifyRows(export) = %+v; want 5 rows intact", r)
	}

	edited := strings.Replace(buf.String(), "19:12:29.300Z", "19:12:29.301Z", 1)
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if rows, err = readExport(path); err != nil {
		t.Fatal(err)
	}
	if r := auditchain.VerifyRows(rows, nil, nil, false); r.OK() || r.Problems[0].RowID != "aud_b" || r.Problems[0].Kind != auditchain.Changed {
		t.Fatalf("VerifyRows(export with a time moved 1 ms) = %+v; want aud_b changed", r)
	}
}
