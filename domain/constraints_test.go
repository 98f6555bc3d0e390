package domain

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Constraints as the API sends them parse to the typed form and map back
// to the same object; bad ones are refused with a message naming them.
func TestParseConstraints(t *testing.T) {
	t.Parallel()
	in := map[string]any{
		"requireApproval":    false,
		"maxCallsPerHour":    float64(100),
		"timeWindow":         map[string]any{"start": "22:00", "end": "06:00", "timezone": "Europe/Berlin", "days": []any{"mon", "fri"}},
		"ipAllowlist":        []any{"10.0.0.0/8", "192.0.2.1"},
		"allowedArgPatterns": []any{"^main$"},
	}
	c, err := ParseConstraints(in)
	if err != nil {
		t.Fatal(err)
	}
	if c.RequireApproval == nil || *c.RequireApproval || c.MaxCallsPerHour != 100 || c.TimeWindow.Timezone != "Europe/Berlin" {
		t.Fatalf("ParseConstraints = %+v", c)
	}
	want := map[string]any{
		"requireApproval":    false,
		"maxCallsPerHour":    int64(100),
		"timeWindow":         map[string]any{"start": "22:00", "end": "06:00", "timezone": "Europe/Berlin", "days": []any{"mon", "fri"}},
		"ipAllowlist":        []any{"10.0.0.0/8", "192.0.2.1"},
		"allowedArgPatterns": []any{"^main$"},
	}
	if got := c.Map(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Map = %#v; want %#v", got, want)
	}
	if c, err := ParseConstraints(nil); err != nil || !c.IsZero() || c.Map() != nil {
		t.Fatalf("ParseConstraints(nil) = %+v, %v; want zero", c, err)
	}
	for _, tc := range []struct {
		in   map[string]any
		want string
	}{
		{map[string]any{"requireAproval": true}, `unknown constraint "requireAproval"`},
		{map[string]any{"requireApproval": "yes"}, `requireApproval: "yes" is not a trust level (untrusted, limited, standard, trusted, elevated)`},
		{map[string]any{"requireApproval": float64(1)}, "requireApproval: must be true, false or a trust level (untrusted, limited, standard, trusted, elevated)"},
		{map[string]any{"requireApproval": "Trusted"}, `"Trusted" is not a trust level`},
		{map[string]any{"minTrustLevel": "high"}, `minTrustLevel: "high" is not a trust level (untrusted, limited, standard, trusted, elevated)`},
		{map[string]any{"minTrustLevel": ""}, `minTrustLevel: "" is not a trust level`},
		{map[string]any{"minTrustLevel": true}, "minTrustLevel: must be a trust level (untrusted, limited, standard, trusted, elevated)"},
		{map[string]any{"minTrustLevel": float64(60)}, "minTrustLevel: must be a trust level"},
		{map[string]any{"maxCallsPerHour": 1.5}, "whole number from 1 to 1000000"},
		{map[string]any{"maxCallsPerHour": float64(0)}, "whole number"},
		{map[string]any{"maxCallsPerHour": float64(1_000_001)}, "whole number"},
		{map[string]any{"timeWindow": map[string]any{"start": "24:00", "end": "01:00"}}, "start must be a time HH:MM"},
		{map[string]any{"timeWindow": map[string]any{"start": "01:00", "end": "02:00", "timezone": "Local"}}, "not an IANA"},
		{map[string]any{"timeWindow": map[string]any{"start": "01:00", "end": "02:00", "days": []any{"mon", "mon"}}}, "listed twice"},
		{map[string]any{"ipAllowlist": []any{"10.0.0.300"}}, "neither an IP address nor a CIDR prefix"},
		{map[string]any{"ipAllowlist": []any{}}, "non-empty list"},
		{map[string]any{"allowedArgPatterns": []any{"("}}, "invalid RE2 pattern"},
	} {
		if _, err := ParseConstraints(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConstraints(%v) = %v; want an error with %q", tc.in, err, tc.want)
		}
	}
}

// The trust constraints: minTrustLevel and requireApproval with a level
// name parse to their typed fields and map back to the names they were
// written with; requireApproval true and false keep their meaning.
func TestParseTrustConstraints(t *testing.T) {
	t.Parallel()
	for _, level := range TrustLevels {
		in := map[string]any{"minTrustLevel": level, "requireApproval": level}
		c, err := ParseConstraints(in)
		if err != nil {
			t.Fatalf("ParseConstraints(%v) = %v", in, err)
		}
		if c.MinTrustLevel != level || c.RequireApprovalBelow != level || c.RequireApproval != nil || c.IsZero() {
			t.Fatalf("ParseConstraints(%v) = %+v", in, c)
		}
		if got := c.Map(); !reflect.DeepEqual(got, in) {
			t.Fatalf("Map = %#v; want %#v", got, in)
		}
	}
	for _, yes := range []bool{true, false} {
		c, err := ParseConstraints(map[string]any{"requireApproval": yes})
		if err != nil || c.RequireApproval == nil || *c.RequireApproval != yes || c.RequireApprovalBelow != "" {
			t.Fatalf("ParseConstraints(requireApproval: %v) = %+v, %v", yes, c, err)
		}
	}
	// Stored and read back, as the database and the delegation verdict
	// carry them.
	var p Permission
	stored := `{"resource":"a","actions":["x"],"constraints":{"minTrustLevel":"trusted","requireApproval":"elevated"}}`
	if err := json.Unmarshal([]byte(stored), &p); err != nil {
		t.Fatal(err)
	}
	if p.Constraints.MinTrustLevel != TrustTrusted || p.Constraints.RequireApprovalBelow != TrustElevated || p.Constraints.RequireApproval != nil {
		t.Fatalf("decoded %+v", p.Constraints)
	}
	if b, _ := json.Marshal(p); string(b) != stored {
		t.Fatalf("encoded %s; want %s", b, stored)
	}
	// A level this version does not know (a newer replica's) still loads,
	// as it was stored: the policy treats a name it cannot rank as unmet.
	if err := json.Unmarshal([]byte(`{"constraints":{"minTrustLevel":"sovereign"}}`), &p); err != nil || p.Constraints.MinTrustLevel != "sovereign" {
		t.Fatalf("a stored unknown level reads as %+v, %v", p.Constraints, err)
	}
	for _, bad := range []string{`{"minTrustLevel":1}`, `{"minTrustLevel":""}`, `{"requireApproval":""}`, `{"requireApproval":null}`} {
		var c Constraints
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("stored constraints %s were accepted as %+v", bad, c)
		}
	}
}

// Stored constraints read back through the same checks, whatever number
// form the row holds (1e+06 is how encoding/json writes a float 1000000).
func TestConstraintsJSON(t *testing.T) {
	t.Parallel()
	var p Permission
	if err := json.Unmarshal([]byte(`{"resource":"a:*","actions":["read"],"constraints":{"maxCallsPerHour":1e+06,"requireApproval":true}}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.Constraints.MaxCallsPerHour != 1_000_000 || p.Constraints.RequireApproval == nil || !*p.Constraints.RequireApproval {
		t.Fatalf("decoded %+v", p.Constraints)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"resource":"a:*","actions":["read"],"constraints":{"maxCallsPerHour":1000000,"requireApproval":true}}`; string(b) != want {
		t.Fatalf("encoded %s; want %s", b, want)
	}
	b, _ = json.Marshal(Permission{Resource: "a", Actions: []string{"x"}})
	if strings.Contains(string(b), "constraints") {
		t.Fatalf("a permission without constraints encodes them: %s", b)
	}
	// A row from another version loads, and keeps what this one does not
	// know: it reaches the policy data and the API as it was stored.
	var q Permission
	stored := `{"resource":"a","actions":["x"],"constraints":{"futureLimit":{"n":1},"timeWindow":{"start":"01:00","end":"02:00","timezone":"US/Pacific-New"}}}`
	if err := json.Unmarshal([]byte(stored), &q); err != nil {
		t.Fatalf("a stored row of another version does not load: %v", err)
	}
	if q.Constraints.TimeWindow == nil || q.Constraints.TimeWindow.Timezone != "US/Pacific-New" ||
		!reflect.DeepEqual(q.Constraints.Map()["futureLimit"], map[string]any{"n": float64(1)}) {
		t.Fatalf("stored constraints read as %+v", q.Constraints)
	}
	if b, _ := json.Marshal(q); !strings.Contains(string(b), `"futureLimit":{"n":1}`) {
		t.Fatalf("an unknown stored constraint was dropped on write: %s", b)
	}
	// The API's edge still refuses both.
	if _, err := ParseConstraints(map[string]any{"futureLimit": 1.0}); err == nil {
		t.Fatal("ParseConstraints accepted an unknown constraint")
	}
	if err := json.Unmarshal([]byte(`{"constraints":{"requireApproval":5}}`), &q); err == nil {
		t.Fatal("a stored constraint of the wrong JSON type was accepted")
	}
}
