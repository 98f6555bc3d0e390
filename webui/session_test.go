package webui

import (
	"fmt"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service"
)

func keyPrincipal(id string) service.Principal {
	return service.Principal{Actor: domain.Actor{Type: domain.ActorKey, ID: id}, Roles: []string{"decider"}}
}

// One key logging in over and over (a decider key an agent holds) pushes
// out its own oldest sessions, never another key's.
func TestSessionsCappedPerKey(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := newSessions(func() time.Time { return now })
	admin := s.create(service.Principal{Actor: domain.Actor{Type: domain.ActorAdminEnv, ID: "KAVACH_ADMIN_KEY"}, Roles: []string{"admin"}})
	owner := s.create(keyPrincipal("key_owner"))
	var flood []string
	for range maxSessions + 10 {
		now = now.Add(time.Millisecond)
		flood = append(flood, s.create(keyPrincipal("key_agent")))
	}
	for name, id := range map[string]string{"KAVACH_ADMIN_KEY": admin, "key_owner": owner} {
		if _, ok := s.get(id); !ok {
			t.Errorf("get(%s's session) = gone after another key's %d logins; want it kept", name, maxSessions+10)
		}
	}
	live := 0
	for _, id := range flood {
		if _, ok := s.get(id); ok {
			live++
		}
	}
	if live != maxKeySessions {
		t.Errorf("one key holds %d sessions; want %d", live, maxKeySessions)
	}
	if _, ok := s.get(flood[len(flood)-1]); !ok {
		t.Error("the newest session of the key was dropped; want the oldest dropped")
	}
}

// Past maxSessions in all, the oldest session goes, whoever's it is.
func TestSessionsBoundedInAll(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := newSessions(func() time.Time { return now })
	first := s.create(keyPrincipal("key_0"))
	for i := 1; i <= maxSessions; i++ {
		now = now.Add(time.Millisecond)
		s.create(keyPrincipal(fmt.Sprintf("key_%d", i)))
	}
	if n := len(s.m); n != maxSessions {
		t.Errorf("len(sessions) = %d; want %d", n, maxSessions)
	}
	if _, ok := s.get(first); ok {
		t.Error("the oldest session survived past maxSessions")
	}
}
