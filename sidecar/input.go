package sidecar

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kavach-dev/kavach/apperr"
)

// checkURL refuses, before anything reads the database, a path or query
// parameter that no ID, filter or cursor can hold: invalid UTF-8, NUL and
// other control characters (PostgreSQL refuses them in text, SQLite would
// store them raw, and a log line would carry them). Every route goes
// through it, so every backend answers 400 alike.
func checkURL(r *http.Request) error {
	if bad(r.URL.Path) {
		return apperr.New(apperr.Invalid, "invalid_parameter",
			"the path holds invalid UTF-8 or a control character")
	}
	for name, values := range r.URL.Query() {
		if bad(name) {
			return apperr.New(apperr.Invalid, "invalid_parameter",
				"a query parameter's name holds invalid UTF-8 or a control character")
		}
		for _, v := range values {
			if bad(v) {
				return apperr.New(apperr.Invalid, "invalid_parameter",
					"query parameter %s holds invalid UTF-8 or a control character", name)
			}
		}
	}
	return nil
}

// bad reports invalid UTF-8 or a control character.
func bad(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// queryParams are the query parameters each API route reads. A route
// listed here refuses any other parameter (400 invalid_parameter naming
// it), so a typo such as ?agentid= or ?owner= is not silently ignored and
// answered with everyone's rows. Routes not listed (OAuth, probes,
// metrics) take what their specifications say.
var queryParams = map[string][]string{
	"agents.create": nil, "agents.get": nil, "agents.update": nil, "agents.rotate": nil, "agents.revoke": nil,
	"agents.effective_permissions": nil, "delegations.create": nil, "delegations.get": nil, "delegations.revoke": nil,
	"approvals.get": nil, "approvals.approve": nil, "approvals.deny": nil, "keys.create": nil, "keys.get": nil,
	"keys.revoke": nil, "policies.get": nil, "bundle.get": nil, "agents.resume": nil, "agents.trust": nil,
	"authorize":           {"explain"},
	"agents.list":         {"ownerId", "status", "limit", "cursor"},
	"agents.delegations":  {"limit", "cursor"},
	"approvals.list":      {"status", "ownerId", "agentId", "limit", "cursor"},
	"keys.list":           {"limit", "cursor"},
	"anomalies.list":      {"agentId", "type", "since", "limit", "cursor"},
	"events.stream":       {"types", "agentId", "after", "follow"},
	"webhooks.deliveries": {"state", "type", "endpoint", "limit", "cursor"},
	"audit.query":         {"agentId", "userId", "result", "since", "until", "kind", "action", "limit", "cursor"},
	// An export has no row cap: limit and cursor are accepted and ignored.
	"audit.export": {"agentId", "userId", "result", "since", "until", "kind", "action", "format", "limit", "cursor"},
}

// queryHints name the parameter meant for names other APIs (KavachOS) use.
var queryHints = map[string]string{"userId": "ownerId", "owner": "ownerId", "user": "userId", "agent": "agentId"}

// checkQuery refuses a query parameter the route does not read.
func checkQuery(route string, r *http.Request) error {
	allowed, checked := queryParams[route]
	if !checked || r.URL.RawQuery == "" {
		return nil
	}
	names := make([]string, 0, len(r.URL.Query()))
	for name := range r.URL.Query() {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if slices.Contains(allowed, name) {
			continue
		}
		if len(allowed) == 0 {
			return apperr.New(apperr.Invalid, "invalid_parameter", "unknown query parameter %q: this route takes none", name)
		}
		hint := ""
		for _, a := range allowed {
			if strings.EqualFold(a, name) {
				hint = a
			}
		}
		if h, ok := queryHints[name]; ok && slices.Contains(allowed, h) {
			hint = h
		}
		if hint != "" {
			return apperr.New(apperr.Invalid, "invalid_parameter", "unknown query parameter %q: did you mean %q? (this route takes %s)",
				name, hint, strings.Join(allowed, ", "))
		}
		return apperr.New(apperr.Invalid, "invalid_parameter", "unknown query parameter %q (this route takes %s)", name, strings.Join(allowed, ", "))
	}
	return nil
}
