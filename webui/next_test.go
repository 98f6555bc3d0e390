package webui

import (
	"strings"
	"testing"
)

func TestNextStaysOnThePages(t *testing.T) {
	for raw, want := range map[string]string{
		"/ui/":              "/ui/",
		"/ui/agents/agt_01": "/ui/agents/agt_01",
		"/ui/audit?since=2026-12-01T00%3A00%3A00Z": "/ui/audit?since=2026-12-01T00%3A00%3A00Z",
		"":                                  "/ui/",
		"https://evil.example/":             "/ui/",
		"//evil.example/ui/":                "/ui/",
		"/ui/../v1/agents":                  "/ui/",
		"/ui/%2e%2e/%2e%2e/oauth/authorize": "/ui/",
		"/ui/.%2E/v1":                       "/ui/",
		"/ui/%2F%2Fevil.example":            "/ui/",
		`/ui/\..\v1`:                        "/ui/",
		"/ui/.\t./v1":                       "/ui/",
		"/ui/\r\nSet-Cookie: x=1":           "/ui/",
		"/uix":                              "/ui/",
	} {
		if got := next(raw); got != want {
			t.Errorf("next(%q) = %q; want %q", raw, got, want)
		}
	}
}

// FuzzNext: whatever a login link's next says, the browser lands on one
// of the pages, on this host.
func FuzzNext(f *testing.F) {
	for _, s := range []string{"/ui/", "/ui/%2e%2e/x", "/ui/.\t./x", `/ui/\\evil`, "/ui/a?b=%2e%2e/../#..", "//evil/ui/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := next(raw)
		if got != "/ui/" && got != raw {
			t.Fatalf("next(%q) = %q; want raw or /ui/", raw, got)
		}
		if segs, ok := browserPath(got); !ok || len(segs) == 0 || segs[0] != "ui" {
			t.Fatalf("next(%q) = %q, which a browser resolves to %v (same host: %v); want a page under /ui/", raw, got, segs, ok)
		}
	})
}

// browserPath resolves a Location path-absolute URL the way a browser's
// URL parser does for an http(s) base: tabs and line breaks dropped, '\'
// read as '/', "." and ".." segments (also percent-encoded) applied. ok
// is false when it would name another host.
func browserPath(loc string) ([]string, bool) {
	loc = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, strings.Trim(loc, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f "))
	path := loc
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	path = strings.ReplaceAll(path, `\`, "/")
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
		return nil, false
	}
	var out []string
	for _, seg := range strings.Split(path[1:], "/") {
		switch strings.ToLower(seg) {
		case "..", ".%2e", "%2e.", "%2e%2e":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case ".", "%2e":
		default:
			out = append(out, seg)
		}
	}
	return out, true
}
