package kavachos

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Progress shows how far an import is: on a terminal, one line redrawn
// at most five times a second; elsewhere (a log), a line every 30 s.
type Progress struct {
	w     io.Writer
	tty   bool
	now   func() time.Time
	mu    sync.Mutex
	phase string
	done  int64
	total int64
	start time.Time
	shown time.Time
}

// NewProgress reports to w; tty says whether w is a terminal.
func NewProgress(w io.Writer, tty bool) *Progress {
	return &Progress{w: w, tty: tty, now: time.Now}
}

// Start begins a phase of total rows. A nil Progress shows nothing.
func (p *Progress) Start(phase string, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.done, p.total = phase, 0, total
	p.start = p.now()
	p.shown = p.start
}

// Add counts n more rows done.
func (p *Progress) Add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	every := 30 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if now := p.now(); now.Sub(p.shown) >= every {
		p.shown = now
		p.show(false)
	}
}

// Done ends the phase.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty || p.total > 0 {
		p.show(true)
	}
}

func (p *Progress) show(last bool) {
	pct := int64(100)
	if p.total > 0 {
		pct = min(100, p.done*100/p.total)
	}
	rate := float64(p.done) / max(p.now().Sub(p.start).Seconds(), 0.001)
	line := fmt.Sprintf("%-11s %d/%d (%d%%) %.0f/s", p.phase, p.done, p.total, pct, rate)
	switch {
	case p.tty && last:
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	default:
		fmt.Fprintln(p.w, line)
	}
}
