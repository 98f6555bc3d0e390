package sidecar

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/access"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/store"
)

// The guard runs before every handler: the Host check (DNS rebinding), the
// credential, the API policy's decision for the route, and the content
// type. Refusals are answered here, counted in /metrics and audited.

type principalKey struct{}

func withPrincipal(ctx context.Context, p service.Principal) context.Context {
	return context.WithValue(store.WithActor(ctx, p.Actor), principalKey{}, p)
}

func principalOf(ctx context.Context) service.Principal {
	if p, ok := ctx.Value(principalKey{}).(service.Principal); ok {
		return p
	}
	return service.Anonymous
}

// hotRoutes authenticate API keys from memory (kept current by the change
// feed); every other route reads the key from the database, so a key
// revoked on another replica is refused there at once.
var hotRoutes = map[string]bool{"authorize": true}

// bearer returns the Authorization header's bearer credential: "" if there
// is no header; an error if it is not "Bearer <credential>".
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", nil
	}
	scheme, cred, ok := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return "", &apperr.Error{Kind: apperr.Unauthorized, Code: "malformed_credential",
			Message: "the Authorization header must be \"Bearer <API key or agent token>\""}
	}
	return cred, nil
}

// guard authenticates and authorizes a call to route. On refusal it has
// answered and returns ok false.
func (s *Server) guard(w http.ResponseWriter, r *http.Request, route string) (*http.Request, bool) {
	if s.access.Public(route) {
		// Open by RFC (OAuth clients authenticate themselves there) or for
		// probes: the Authorization header, if any, is the endpoint's own.
		return r, true
	}
	if AuthOff {
		// A measurement build: agents' own tokens still name the agent
		// whose decision it is; nothing is checked.
		p := service.Anonymous
		if cred, _ := bearer(r); cred != "" && !strings.HasPrefix(cred, service.KeyPrefix) {
			p = service.Principal{Actor: domain.Actor{Type: domain.ActorAgent}, AgentToken: cred}
		}
		return r.WithContext(withPrincipal(r.Context(), p)), true
	}
	p := service.Anonymous
	cred, err := bearer(r)
	if err == nil && cred != "" {
		p, err = s.svc.Authenticate(r.Context(), cred, !hotRoutes[route])
	}
	if err != nil {
		s.rejectCredential(w, r, route, service.Anonymous, err)
		return r, false
	}
	d := s.access.Decide(route, principalType(p), p.Roles)
	switch {
	case !d.Allow && p.Actor.Type == domain.ActorAnonymous:
		s.refuse(w, r, route, p, errNoCredential)
		return r, false
	case !d.Allow && p.IsAgent():
		// A bad agent credential is a 401 like any other; a good one that
		// strays from its own decisions is named in the 403's audit row.
		own, err := s.svc.AgentOf(r.Context(), p)
		var se *apperr.Error
		if errors.As(err, &se) && se.Kind == apperr.Unauthorized {
			s.refuse(w, r, route, p, se)
			return r, false
		}
		p.Actor.ID = own
		s.refuse(w, r, route, p, forbidden(p, route))
		return r, false
	case !d.Allow:
		s.refuse(w, r, route, p, forbidden(p, route))
		return r, false
	}
	ctx := withPrincipal(r.Context(), p)
	if d.Code == "self" {
		// An agent for itself only: a path naming an agent must name it.
		if id := r.PathValue("id"); id != "" {
			own, err := s.svc.AgentOf(ctx, p)
			if err != nil {
				s.rejectCredential(w, r, route, p, err)
				return r, false
			}
			p.Actor.ID = own
			ctx = withPrincipal(r.Context(), p)
			if id != own {
				s.refuse(w, r, route, p, apperr.New(apperr.Forbidden, "forbidden",
					"an agent's credential may only read its own agent (%s)", own))
				return r, false
			}
		}
	}
	return r.WithContext(ctx), true
}

// errNoCredential is the 401 to a caller without credential.
var errNoCredential = apperr.New(apperr.Unauthorized, "unauthenticated", "this endpoint needs a credential: Authorization: Bearer kvk_… (an API key)")

// rejectCredential answers an error resolving a credential: a bad one is a
// refused call (401), anything else a fault (fail).
func (s *Server) rejectCredential(w http.ResponseWriter, r *http.Request, route string, p service.Principal, err error) {
	var se *apperr.Error
	if errors.As(err, &se) && se.Kind == apperr.Unauthorized {
		s.refuse(w, r, route, p, se)
		return
	}
	s.fail(w, r, err)
}

func principalType(p service.Principal) string {
	switch p.Actor.Type {
	case domain.ActorAnonymous:
		return access.Anonymous
	case domain.ActorAgent:
		return access.Agent
	}
	return access.Key
}

// forbidden is the 403 to a credential the API policy does not allow on
// route.
func forbidden(p service.Principal, route string) *apperr.Error {
	if p.IsAgent() {
		return apperr.New(apperr.Forbidden, "forbidden", "an agent's credential may only ask for its own decisions (POST /v1/authorize without agentId) and read its own effective permissions; %s needs an API key", route)
	}
	return apperr.New(apperr.Forbidden, "forbidden", "API key %s (roles %s) may not call %s", p.Actor.ID, strings.Join(p.Roles, ", "), route)
}

// refuse answers a refusal (an Unauthorized or Forbidden error) through
// fail, counts it and audits it (within a budget).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, route string, p service.Principal, e *apperr.Error) {
	if e == errNoCredential {
		// RFC 6750 §3: no credential was sent, so no error attribute;
		// fail adds error="invalid_token" for a bad one (§3.1).
		w.Header().Set("WWW-Authenticate", `Bearer realm="kavach"`)
	}
	s.fail(w, r, e)
	status := statusOf(e.Kind)
	s.m.refused(status, e.Code)
	s.svc.RecordRefusal(service.Refusal{Actor: p.Actor, AgentToken: p.AgentToken, Route: route, Status: status, Code: e.Code,
		Reason: r.Method + " " + loggedPath(r) + ": " + e.Message})
}

// jsonBody checks that a request with a body says it is JSON: a browser's
// cross-site form (text/plain, urlencoded, multipart) never passes.
func jsonBody(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" && r.ContentLength == 0 {
		return nil // no body, as rotate and revoke take
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &apperr.Error{Kind: apperr.Unsupported, Code: "unsupported_media_type",
			Message: fmt.Sprintf("the body must be JSON with Content-Type: application/json (got %q)", ct)}
	}
	return nil
}

// hostPolicy refuses requests whose Host a browser could have been tricked
// into sending (DNS rebinding): only IP literals, localhost and the
// configured names pass.
type hostPolicy struct {
	allowed map[string]bool
}

func newHostPolicy(names []string) *hostPolicy {
	h := &hostPolicy{allowed: map[string]bool{"localhost": true}}
	for _, n := range names {
		if host, _, err := net.SplitHostPort(n); err == nil {
			n = host
		}
		if n != "" {
			h.allowed[strings.ToLower(strings.TrimSuffix(n, "."))] = true
		}
	}
	return h
}

func (h *hostPolicy) ok(hostport string) bool {
	host := hostport
	if hst, _, err := net.SplitHostPort(hostport); err == nil {
		host = hst
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if net.ParseIP(host) != nil {
		// A rebinding attack needs a name; an address is what was dialled.
		return true
	}
	return h.allowed[host]
}

// refusalCounts counts refused calls by status and code for /metrics.
type refusalCounts struct {
	mu sync.Mutex
	n  map[[2]string]uint64
}

func (m *metrics) refused(status int, code string) {
	m.refusals.mu.Lock()
	defer m.refusals.mu.Unlock()
	if m.refusals.n == nil {
		m.refusals.n = map[[2]string]uint64{}
	}
	m.refusals.n[[2]string{fmt.Sprint(status), code}]++
}
