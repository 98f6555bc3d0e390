package engine

import (
	"testing"

	"github.com/kavach-dev/kavach/domain"
)

// TrustLevel remembers levels per data revision: a write is seen at once.
func TestTrustLevel(t *testing.T) {
	ctx := t.Context()
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := testAgent("agt_a", "h-a")
	a.Trust.Level = domain.TrustStandard
	if _, err := e.Load(ctx, memSource{agents: []domain.Agent{a}}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // read, then remembered
		if got := e.TrustLevel(ctx, "agt_a"); got != domain.TrustStandard {
			t.Fatalf("TrustLevel(agt_a) = %q; want %q", got, domain.TrustStandard)
		}
	}
	if got := e.TrustLevel(ctx, "agt_nope"); got != "" {
		t.Errorf("TrustLevel(agt_nope) = %q; want \"\"", got)
	}
	a.Trust.Level = domain.TrustElevated
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{a}}); err != nil {
		t.Fatal(err)
	}
	if got := e.TrustLevel(ctx, "agt_a"); got != domain.TrustElevated {
		t.Errorf("TrustLevel(agt_a) after Apply = %q; want %q", got, domain.TrustElevated)
	}
}
