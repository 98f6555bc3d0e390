package store

import "fmt"

// Page selects one page of a list, in the list's ID order: at most Limit
// rows (Limit must be positive), those after the row whose ID is Cursor
// ("" starts at the first). The order is that of the unique, indexed IDs
// (keyset pagination, never OFFSET), so rows written while a client pages
// neither repeat nor hide the rows it has yet to reach.
type Page struct {
	Limit  int
	Cursor string
}

func (p Page) check(list string) error {
	if p.Limit <= 0 {
		return fmt.Errorf("%s: page limit must be positive", list)
	}
	return nil
}

// cutPage trims rows, read with LIMIT Limit+1, to the page, and returns
// the cursor of the next page: the page's last ID, or "" when the extra
// row did not come and so no other page follows.
func cutPage[T any](rows []T, limit int, id func(T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, id(rows[limit-1])
}
