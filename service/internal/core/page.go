package core

import (
	"strconv"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/store"
)

// PageQuery holds the raw paging parameters of a list endpoint: limit
// and cursor (a previous page's nextCursor); empty ones take defaults.
type PageQuery struct {
	Limit, Cursor string
}

// Limit parses a page size: absent is api.DefaultPageLimit, otherwise an
// integer from 1 to api.MaxPageLimit.
func Limit(raw string) (int, error) {
	if raw == "" {
		return api.DefaultPageLimit, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > api.MaxPageLimit {
		return 0, Invalid("invalid_parameter", "limit must be an integer from 1 to %d", api.MaxPageLimit)
	}
	return n, nil
}

// Cursor checks a cursor of a list whose IDs start with prefix: a cursor
// is the last ID of the page before, so anything else is malformed. The
// list of agents also holds agents imported with their UUIDs, so its
// cursor may be one.
func Cursor(prefix, raw string) error {
	wellFormed := store.WellFormedID(prefix, raw)
	if prefix == "agt_" {
		wellFormed = store.WellFormedAgentID(raw)
	}
	if raw != "" && !wellFormed {
		return Invalid("invalid_parameter", "cursor is not a nextCursor of this list: pass one back as it came, or none for the first page")
	}
	return nil
}

// Page checks q for a list whose IDs start with prefix and returns the
// store's page.
func (q PageQuery) Page(prefix string) (store.Page, error) {
	n, err := Limit(q.Limit)
	if err != nil {
		return store.Page{}, err
	}
	if err := Cursor(prefix, q.Cursor); err != nil {
		return store.Page{}, err
	}
	return store.Page{Limit: n, Cursor: q.Cursor}, nil
}
