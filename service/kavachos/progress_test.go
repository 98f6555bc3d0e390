package kavachos

import (
	"bytes"
	"testing"
	"time"
)

// On a terminal the line is redrawn in place at most five times a second
// and ended when the phase is; elsewhere a line every 30 s and one at the
// end.
func TestProgress(t *testing.T) {
	for _, c := range []struct {
		tty  bool
		want string
	}{
		{true, "\r\033[Kagents      50/100 (50%) 100/s\r\033[Kagents      100/100 (100%) 200/s\n"},
		{false, "agents      100/100 (100%) 200/s\n"},
	} {
		var b bytes.Buffer
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		p := NewProgress(&b, c.tty)
		p.now = func() time.Time { return now }
		p.Start("agents", 100)
		now = now.Add(500 * time.Millisecond)
		p.Add(50)
		p.Add(50) // in the same instant: not redrawn
		p.Done()
		if got := b.String(); got != c.want {
			t.Errorf("tty %v: progress wrote %q; want %q", c.tty, got, c.want)
		}
	}
	var none *Progress // shows nothing, and does not fail
	none.Start("agents", 1)
	none.Add(1)
	none.Done()
}
