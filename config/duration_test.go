package config

import (
	"strings"
	"testing"
	"time"
)

// mcpOn is an mcp section that validates, for the TTL keys under it.
const mcpOn = "mcp:\n  enabled: true\n  issuer: https://a.example\n  loginPage: /l\n  allowedResources: [https://m.example/mcp]\n"

// durationKeys are every duration key of the file: where it goes in a
// document, and how the program reads it back.
var durationKeys = []struct {
	path string
	doc  func(v string) string
	get  func(Config) time.Duration
}{
	{"approval.ttl", func(v string) string { return "approval:\n  ttl: " + v + "\n" }, Config.ApprovalTTL},
	{"mcp.accessTokenTtl", func(v string) string { return mcpOn + "  accessTokenTtl: " + v + "\n" },
		func(c Config) time.Duration { return c.MCP.OAuth().AccessTokenTTL }},
	{"mcp.refreshTokenTtl", func(v string) string { return mcpOn + "  refreshTokenTtl: " + v + "\n" },
		func(c Config) time.Duration { return c.MCP.OAuth().RefreshTokenTTL }},
	{"mcp.codeTtl", func(v string) string { return mcpOn + "  codeTtl: " + v + "\n" },
		func(c Config) time.Duration { return c.MCP.OAuth().CodeTTL }},
	{"database.timeout", func(v string) string { return "database:\n  timeout: " + v + "\n" }, Config.DatabaseTimeout},
	{"database.pollInterval", func(v string) string { return "database:\n  pollInterval: " + v + "\n" }, Config.PollInterval},
	{"agents.tokenExpiry", func(v string) string { return "agents:\n  tokenExpiry: " + v + "\n" }, Config.TokenExpiry},
	{"audit.retentionDays", func(v string) string { return "audit:\n  retentionDays: " + v + "\n" }, Config.Retention},
}

// load parses and validates one document.
func load(doc string) (Config, error) {
	c, err := Parse([]byte(doc))
	if err == nil {
		err = c.Validate()
	}
	return c, err
}

// Every duration key takes a number with a unit; a plain number counts
// seconds where the seeds give seconds (days for retentionDays) and needs a
// unit elsewhere; every refusal names the key path and what it takes.
func TestDurationKeys(t *testing.T) {
	t.Parallel()
	const (
		ok          = ""
		noUnit      = "has no unit: use a number with a unit"
		notDuration = "is not a duration: use"
		outOfRange  = "is out of range: use from"
		notWhole    = "is not a whole number of"
		notScalar   = "cannot read a mapping into a duration (it takes a duration"
	)
	type want struct {
		d   time.Duration
		err string // ok, or what the message says after the key path
	}
	is := func(d time.Duration) want { return want{d: d} }
	cases := map[string]map[string]want{
		"approval.ttl": {
			"300": is(5 * time.Minute), `"300"`: is(5 * time.Minute), "5m": is(5 * time.Minute),
			"1h30m": is(90 * time.Minute), "7d": is(7 * Day), "1w": is(7 * Day), "1": is(time.Second),
			"5x": {err: notDuration}, "-5m": {err: outOfRange}, "-300": {err: outOfRange}, "0": {err: outOfRange}, "0s": {err: outOfRange},
			"8d": {err: outOfRange}, "604801": {err: outOfRange}, "1500ms": {err: notWhole}, "1.5": {err: notDuration},
			"{s: 1}": {err: notScalar}, "99999999999999999999": {err: outOfRange}, "9999999999999999h": {err: outOfRange},
		},
		"mcp.accessTokenTtl": {
			"3600": is(time.Hour), `"3600"`: is(time.Hour), "5m": is(5 * time.Minute), "1h30m": is(90 * time.Minute),
			"7d": is(7 * Day), "366d": is(366 * Day),
			"5x": {err: notDuration}, "-1": {err: outOfRange}, "0": {err: outOfRange}, "367d": {err: outOfRange}, "500ms": {err: outOfRange},
		},
		"mcp.refreshTokenTtl": {
			"604800": is(7 * Day), `"604800"`: is(7 * Day), "5m": is(5 * time.Minute), "1h30m": is(90 * time.Minute),
			"7d": is(7 * Day), "2w": is(14 * Day),
			"5x": {err: notDuration}, "-7d": {err: outOfRange}, "0": {err: outOfRange}, "31622401": {err: outOfRange},
		},
		"mcp.codeTtl": {
			"600": is(10 * time.Minute), `"600"`: is(10 * time.Minute), "5m": is(5 * time.Minute),
			"1h30m": is(90 * time.Minute), "7d": is(7 * Day),
			"5x": {err: notDuration}, "-1": {err: outOfRange}, "0": {err: outOfRange}, "53w": {err: outOfRange}, "1.5s": {err: notWhole},
		},
		"database.timeout": {
			"5s": is(5 * time.Second), "500ms": is(500 * time.Millisecond), "1m": is(time.Minute),
			"100ms": is(100 * time.Millisecond), "1.5s": is(1500 * time.Millisecond), `"2s"`: is(2 * time.Second),
			"300": {err: noUnit}, `"300"`: {err: noUnit}, "5m": {err: outOfRange}, "1h30m": {err: outOfRange}, "7d": {err: outOfRange},
			"99ms": {err: outOfRange}, "0": {err: outOfRange}, "-1s": {err: outOfRange}, "5x": {err: notDuration}, "soon": {err: notDuration},
			"100500us": {err: notWhole},
		},
		"database.pollInterval": {
			"1s": is(time.Second), "500ms": is(500 * time.Millisecond), "10ms": is(10 * time.Millisecond),
			"1m":  is(time.Minute),
			"300": {err: noUnit}, `"300"`: {err: noUnit}, "5m": {err: outOfRange}, "7d": {err: outOfRange}, "0": {err: outOfRange},
			"-1s": {err: outOfRange}, "5x": {err: notDuration}, "9ms": {err: outOfRange},
		},
		"agents.tokenExpiry": {
			"5m": is(5 * time.Minute), "1h30m": is(90 * time.Minute), "7d": is(7 * Day), "2w": is(14 * Day),
			"45s": is(45 * time.Second), "24h": is(24 * time.Hour), "36500d": is(36500 * Day), "1.5h": is(90 * time.Minute),
			"300": {err: noUnit}, `"300"`: {err: noUnit}, "0": is(0), "0s": is(0), "36501d": {err: outOfRange}, "5x": {err: notDuration},
			"1y": {err: notDuration}, "-1h": {err: outOfRange}, "1.5s": {err: notWhole}, `" 7d"`: {err: notDuration}, "d": {err: notDuration},
		},
		"audit.retentionDays": {
			"30": is(30 * Day), `"30"`: is(30 * Day), "90d": is(90 * Day), "12w": is(84 * Day),
			"36h": is(36 * time.Hour), "0": is(0), "36500": is(36500 * Day),
			"5m": {err: outOfRange}, "1h30m": {err: outOfRange}, "36501": {err: outOfRange}, "-1": {err: outOfRange}, "5x": {err: notDuration},
		},
	}
	for _, k := range durationKeys {
		for v, w := range cases[k.path] {
			c, err := load(k.doc(v))
			switch {
			case w.err == ok && err != nil:
				t.Errorf("%s: %s = error %v; want %v", k.path, v, err, w.d)
			case w.err == ok && k.get(c) != w.d:
				t.Errorf("%s: %s = %v; want %v", k.path, v, k.get(c), w.d)
			case w.err != ok && (err == nil || !strings.Contains(err.Error(), k.path) || !strings.Contains(err.Error(), w.err)):
				t.Errorf("%s: %s = %v; want an error naming %s that says %q", k.path, v, err, k.path, w.err)
			}
		}
	}
	// Unset, each is the program's default (0: the reader's own default).
	c, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range durationKeys {
		want := time.Duration(0)
		switch k.path {
		case "database.timeout":
			want = DefaultDatabaseTimeout
		case "agents.tokenExpiry":
			want = DefaultTokenExpiry // KavachOS's
		case "mcp.accessTokenTtl", "mcp.refreshTokenTtl", "mcp.codeTtl":
			continue // mcp is off
		}
		if got := k.get(c); got != want {
			t.Errorf("%s unset = %v; want %v", k.path, got, want)
		}
	}
}

// The messages in full: the key path, the value, what is allowed, in the
// units the key is written in.
func TestDurationMessages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ doc, want string }{
		{"approval:\n  ttl: 5x\n", `approval.ttl: "5x" is not a duration: use seconds (300) or a number with a unit (5m, 1h, 7d)`},
		{"approval:\n  ttl: 8d\n", `approval.ttl: "8d" is out of range: use from 1s to 7d (1 to 604800 seconds); leave it out for the default, 5m`},
		{"approval:\n  ttl: 0\n", `approval.ttl: "0" is out of range: use from 1s to 7d (1 to 604800 seconds); leave it out for the default, 5m`},
		{"approval:\n  ttl: 1500ms\n", `approval.ttl: "1500ms" is not a whole number of seconds: use from 1s to 7d (1 to 604800 seconds)`},
		{"approval:\n  ttl: [5m]\n", "line 2: approval.ttl: cannot read a list into a duration (it takes a duration: a number with a unit, such as 90s, 5m, 1h30m or 7d)"},
		{mcpOn + "  codeTtl: -1\n", `mcp.codeTtl: "-1" is out of range: use from 1s to 366d (1 to 31622400 seconds); leave it out for the default, 10m`},
		{"database:\n  timeout: 5\n", `database.timeout (--database-timeout, KAVACH_DATABASE_TIMEOUT): "5" has no unit: use a number with a unit (500ms, 5s, 1m)`},
		{"database:\n  pollInterval: 2m\n", `database.pollInterval: "2m" is out of range: use from 10ms to 1m; leave it out for the default, 1s`},
		{"agents:\n  tokenExpiry: 1y\n", `agents.tokenExpiry: "1y" is not a duration: use a number with a unit (30m, 24h, 7d)`},
		{"agents:\n  tokenExpiry: -1h\n", `agents.tokenExpiry: "-1h" is out of range: use from 1s to 36500d; 0 for no expiry; leave it out for the default, 24h`},
		{"audit:\n  retentionDays: 12h\n", `audit.retentionDays: "12h" is out of range: use from 1d to 36500d (1 to 36500 days); 0 keeps every row (the default)`},
		{"audit:\n  retentionDays: x\n", `audit.retentionDays: "x" is not a duration: use days (30) or a number with a unit (90d, 12w, 36h)`},
	} {
		_, err := load(tc.doc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want %q", tc.doc, err, tc.want)
		}
	}
}

// The parser itself: Go's durations plus d and w, nothing looser.
func TestRuleParse(t *testing.T) {
	t.Parallel()
	r := Rule{Name: "--x", Plain: time.Second, Min: time.Nanosecond, Max: MaxExpiry}
	for in, want := range map[string]time.Duration{
		"": 0, "1ns": 1, "1us": time.Microsecond, "1µs": time.Microsecond, "1.5h": 90 * time.Minute, ".5h": 30 * time.Minute,
		"1d12h": 36 * time.Hour, "1w1d": 8 * Day, "2h45m30.5s": 2*time.Hour + 45*time.Minute + 30500*time.Millisecond, "007": 7 * time.Second,
		"0.000000001s": 1, "0.0000000001s": -1, "5.m": -1, "+5m": -1, "5 m": -1, "5M": -1, "5mm": -1, "1h-5m": -1, "--5m": -1, "-": -1,
		"5m ": -1, "1e3": -1, "0x10": -1, "1_000": -1, "m5": -1, "5": 5 * time.Second,
	} {
		got, err := r.Parse(in)
		if want < 0 && err == nil || want >= 0 && (err != nil || got != want) {
			t.Errorf("Parse(%q) = %v, %v; want %v (negative: an error)", in, got, err, want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "--x: ") {
			t.Errorf("Parse(%q) error %q does not start with the name", in, err)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		time.Second: "1s", 100 * time.Millisecond: "100ms", time.Minute: "1m", time.Hour: "1h", 90 * time.Minute: "1h30m",
		7 * Day: "7d", 36500 * Day: "36500d", 36 * time.Hour: "36h", 61 * time.Second: "1m1s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q; want %q", d, got, want)
		}
	}
	// What it writes reads back.
	r := Rule{Name: "x", Min: 1, Max: MaxExpiry}
	for _, d := range []time.Duration{time.Second, 90 * time.Minute, 7 * Day, 36 * time.Hour, 1500 * time.Millisecond} {
		if got, err := r.Parse(FormatDuration(d)); err != nil || got != d {
			t.Errorf("Parse(FormatDuration(%v)) = %v, %v", d, got, err)
		}
	}
}

// FuzzDuration reads arbitrary text as a duration: never a panic; what it
// takes is within the rule and reads back the same once formatted; what it
// refuses, it refuses by the rule's name.
func FuzzDuration(f *testing.F) {
	for _, seed := range []string{"300", "5m", "1h30m", "7d", "2w", "1.5h", ".5s", "500ms", "1µs", "-5m", "0", "5x", "99999999999999999999", "9999999999999999h", "1h-5m", "5."} {
		f.Add(seed)
	}
	r := Rule{Name: "x", Plain: time.Second, Min: time.Nanosecond, Max: MaxExpiry}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := r.Parse(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "x: ") {
				t.Fatalf("Parse(%q) error %q does not start with the name", s, err)
			}
			return
		}
		if s != "" && (d < r.Min || d > r.Max) {
			t.Fatalf("Parse(%q) = %v: out of the rule's range", s, d)
		}
		if back, err := r.Parse(FormatDuration(d)); d != 0 && (err != nil || back != d) {
			t.Fatalf("Parse(FormatDuration(%v)) = %v, %v", d, back, err)
		}
	})
}
