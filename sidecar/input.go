package sidecar

import (
	"net/http"
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
