package events

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

func TestWithApprovalURL(t *testing.T) {
	var got []string
	e := &Events{opts: Options{ApprovalURL: func(id, owner string, exp time.Time) string {
		got = append(got, id+"|"+owner+"|"+exp.UTC().Format(time.RFC3339Nano))
		return "https://k.example/ui/approve/" + id + "/sig"
	}}}
	ev := domain.Event{Type: domain.EventApprovalRequested, Data: json.RawMessage(`{"approvalId":"apr_1","ownerId":"alice",` +
		`"expiresAt":"2026-12-02T10:00:00.123Z","approval":{"id":"apr_1"}}`)}
	out := e.withApprovalURL(ev)
	var d struct {
		URL      string
		Approval struct{ URL string }
	}
	if err := json.Unmarshal(out.Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.URL != "https://k.example/ui/approve/apr_1/sig" || d.Approval.URL != d.URL {
		t.Errorf("data = %s", out.Data)
	}
	if len(got) != 1 || got[0] != "apr_1|alice|2026-12-02T10:00:00.123Z" {
		t.Errorf("signed %v", got)
	}
	// Other events, and approvals without links, are left as they are.
	other := domain.Event{Type: domain.EventAgentCreated, Data: json.RawMessage(`{"a":1}`)}
	if string(e.withApprovalURL(other).Data) != `{"a":1}` {
		t.Error("another event was changed")
	}
	off := &Events{opts: Options{ApprovalURL: func(string, string, time.Time) string { return "" }}}
	if string(off.withApprovalURL(ev).Data) != string(ev.Data) {
		t.Error("an approval without a link was changed")
	}
}
