package domain

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
)

// FuzzMaxCallsPerHour: any JSON number the API may receive as
// maxCallsPerHour is accepted exactly when it is a whole number from 1 to
// MaxCallsPerHour, and then it stays that integer end to end: in the typed
// constraint, in the map the engine reads and in the JSON stored, written
// without a fraction or an exponent, and read back the same.
func FuzzMaxCallsPerHour(f *testing.F) {
	for _, s := range []string{"1", "5", "999999", "1000000", "1000001", "1e6", "1e+06", "1000000.0", "0", "-1", "1.5",
		"1e400", "9223372036854775808", "0.9999999999999999999", "1000000.0000000001", "2.5e3", "-0", "1E2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		var m map[string]any
		if json.Unmarshal([]byte(`{"maxCallsPerHour":`+lit+`}`), &m) != nil {
			return // not a JSON number: the decoder refuses it first
		}
		c, err := ParseConstraints(m)
		f64, _ := m["maxCallsPerHour"].(float64)
		// What the API compares is the float64 the JSON decoder made.
		want := f64 >= 1 && f64 <= MaxCallsPerHour && f64 == float64(int64(f64))
		if (err == nil) != want {
			t.Fatalf("%s (decoded %v): err %v; want accepted %v", lit, f64, err, want)
		}
		if err != nil {
			return
		}
		if c.MaxCallsPerHour < 1 || c.MaxCallsPerHour > MaxCallsPerHour || float64(c.MaxCallsPerHour) != f64 {
			t.Fatalf("%s: typed %d", lit, c.MaxCallsPerHour)
		}
		if v, ok := c.Map()["maxCallsPerHour"].(int64); !ok || v != c.MaxCallsPerHour {
			t.Fatalf("%s: engine map holds %#v", lit, c.Map()["maxCallsPerHour"])
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"maxCallsPerHour":` + strconv.FormatInt(c.MaxCallsPerHour, 10) + `}`; string(b) != want {
			t.Fatalf("%s: stored as %s; want %s", lit, b, want)
		}
		var back Constraints
		if err := json.Unmarshal(b, &back); err != nil || back.MaxCallsPerHour != c.MaxCallsPerHour {
			t.Fatalf("%s: read back %d, %v", lit, back.MaxCallsPerHour, err)
		}
	})
}

// FuzzTrustConstraints: any JSON value the API may receive as minTrustLevel
// or requireApproval is accepted exactly when it names a trust level (or,
// for requireApproval, is true or false), and then it survives the trip the
// constraint makes: the map the engine reads, the JSON stored, the JSON read
// back.
func FuzzTrustConstraints(f *testing.F) {
	for _, s := range []string{`"untrusted"`, `"limited"`, `"standard"`, `"trusted"`, `"elevated"`, `"Elevated"`, `" trusted"`,
		`"trusted\u0000"`, `""`, `true`, `false`, `null`, `0`, `50`, `["standard"]`, `{"level":"standard"}`, `"sovereign"`} {
		f.Add("minTrustLevel", s)
		f.Add("requireApproval", s)
	}
	f.Fuzz(func(t *testing.T, name, lit string) {
		if name != "minTrustLevel" && name != "requireApproval" {
			return
		}
		var m map[string]any
		if json.Unmarshal([]byte(`{"`+name+`":`+lit+`}`), &m) != nil {
			return // not a JSON value: the decoder refuses it first
		}
		v := m[name]
		s, isString := v.(string)
		_, isBool := v.(bool)
		want := isString && TrustRank(s) >= 0 || name == "requireApproval" && isBool
		c, err := ParseConstraints(m)
		if (err == nil) != want {
			t.Fatalf("%s: %s: err %v; want accepted %v", name, lit, err, want)
		}
		if err != nil {
			return
		}
		if got := c.Map(); !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: %s: engine map holds %#v", name, lit, got)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Constraints
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("%s: %s: stored as %s, read back %+v, %v; want %+v", name, lit, b, back, err, c)
		}
	})
}
