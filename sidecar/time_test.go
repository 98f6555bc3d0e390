package sidecar_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/service"
)

// Times are read in any RFC 3339 form (a fraction of any length or none,
// Z or an offset) and written back in one: api.TimeFormat. What is not a
// time is a 400 that says what a time looks like.
func TestTimesAreReadInAnyRFC3339Form(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	for _, tc := range []struct{ in, want string }{
		{"2099-01-02T03:04:05Z", "2099-01-02T03:04:05.000Z"},
		{"2099-01-02T03:04:05.3Z", "2099-01-02T03:04:05.300Z"},
		{"2099-01-02T03:04:05.123456789Z", "2099-01-02T03:04:05.123Z"},
		{"2099-01-02T08:34:05.5+05:30", "2099-01-02T03:04:05.500Z"},
		{"2099-01-01T22:04:05-05:00", "2099-01-02T03:04:05.000Z"},
	} {
		status, body := e.do(t, "POST", "/v1/agents", `{"ownerId":"u","name":"n","expiresAt":"`+tc.in+`"}`)
		var a api.Agent
		if err := json.Unmarshal(body, &a); err != nil || status != 201 || a.ExpiresAt == nil {
			t.Fatalf("create with expiresAt %s = %d %s", tc.in, status, body)
		}
		if !strings.Contains(string(body), `"expiresAt":"`+tc.want+`"`) {
			t.Errorf("create with expiresAt %s = %s; want expiresAt %s", tc.in, body, tc.want)
		}
		status, body = e.do(t, "PATCH", "/v1/agents/"+a.ID, `{"expiresAt":"`+tc.in+`"}`)
		if status != 200 || !strings.Contains(string(body), `"expiresAt":"`+tc.want+`"`) {
			t.Errorf("update with expiresAt %s = %d %s; want expiresAt %s", tc.in, status, body, tc.want)
		}
		q := url.Values{"since": {strings.Replace(tc.in, "2099", "2000", 1)}, "until": {tc.in}}
		if status, body := e.do(t, "GET", "/v1/audit?"+q.Encode(), ""); status != 200 {
			t.Errorf("audit since and until %s = %d %s", tc.in, status, body)
		}
	}
	for _, bad := range []string{`"tomorrow"`, `"2099-01-02"`, `"2099-01-02 03:04:05Z"`, `4070919845`} {
		status, body := e.do(t, "POST", "/v1/agents", `{"ownerId":"u","name":"n","expiresAt":`+bad+`}`)
		var eb api.ErrorBody
		if err := json.Unmarshal(body, &eb); err != nil || status != 400 || eb.Error.Code != "invalid_field" ||
			!strings.Contains(eb.Error.Message, "RFC 3339") {
			t.Errorf("create with expiresAt %s = %d %s; want 400 invalid_field saying it must be an RFC 3339 time", bad, status, body)
		}
	}
}
