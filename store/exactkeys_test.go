package store

import (
	"errors"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/internal/mysqltest"
)

// A read by key finds that key exactly, or nothing: on MySQL/MariaDB
// (utf8mb4_bin ignores trailing spaces) "agt_x " would otherwise be agent
// "agt_x", and the bounded policy data store (engine.CachedData), which
// remembers a read under the key it asked for, would keep agt_x's document
// where no write of agt_x replaces it.
func TestReadsByKeyAreExact(t *testing.T) {
	for _, b := range []backend{
		{name: "sqlite-file", shared: true, url: func(t *testing.T) string { return t.TempDir() + "/kavach.db" }},
		{name: "mysql", shared: true, polls: true, url: func(t *testing.T) string { return mysqltest.URL(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			s, c := b.open(t)
			ctx := t.Context()
			ag := contractAgents(t, s, "exact", 2)
			d := delegate(t, s, ag[1].ID, ag[0].ID, c.Now().Add(time.Hour))
			if a, err := s.GetAgent(ctx, ag[0].ID+" "); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetAgent(%q) = agent %q, %v; want ErrNotFound", ag[0].ID+" ", a.ID, err)
			}
			if a, err := s.PolicyAgent(ctx, ag[0].ID+" "); !errors.Is(err, ErrNotFound) {
				t.Errorf("PolicyAgent(%q) = agent %q, %v; want ErrNotFound", ag[0].ID+" ", a.ID, err)
			}
			if id, err := s.AgentIDByTokenHash(ctx, ag[0].TokenHash+" "); !errors.Is(err, ErrNotFound) {
				t.Errorf("AgentIDByTokenHash(hash+\" \") = %q, %v; want ErrNotFound", id, err)
			}
			if got, err := s.GetDelegation(ctx, d.ID+" "); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetDelegation(%q) = %q, %v; want ErrNotFound", d.ID+" ", got.ID, err)
			}
		})
	}
}
