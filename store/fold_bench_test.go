package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// BenchmarkFold folds one tick of a busy sidecar: 50 agents, each with
// calls and a few denials in the hour, on a SQLite file.
func BenchmarkFold(b *testing.B) {
	for _, denials := range []int64{0, 3} {
		b.Run(fmt.Sprintf("denials=%d", denials), func(b *testing.B) {
			s, err := Open(b.Context(), Options{URL: filepath.Join(b.TempDir(), "kavach.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var acts []AgentActivity
			for i := range 50 {
				a, err := s.CreateAgent(b.Context(), domain.Agent{OwnerID: "u", Name: "n", Type: "autonomous", TokenHash: fmt.Sprint(i)}, 0)
				if err != nil {
					b.Fatal(err)
				}
				acts = append(acts, AgentActivity{AgentID: a.ID, Hours: []HourActivity{{Hour: time.Now().Truncate(time.Hour),
					Calls: 10, Denials: denials, Allowed: 10 - denials}}})
			}
			r := FoldRules{Window: 7 * 24 * time.Hour, Score: func(in TrustInput) (int, string, domain.TrustFactors) {
				return 50, domain.TrustLimited, domain.TrustFactors{Base: 50, AllowedCalls: in.AllowedCalls, Denials: in.Denials}
			}, Detect: func(AgentTotals) []Finding { return nil }}
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Fold(b.Context(), acts, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
