package webui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kavach-dev/kavach/service"
)

// Sessions of the dashboard live in this process's memory: a browser
// holds a random ID in an HttpOnly, SameSite=Strict cookie (Secure under
// TLS); the server keeps only its SHA-256, the principal of the API key
// that logged in (never the key) and the expiries. Every request re-reads
// the key, so a key revoked or expired ends its sessions at once.
const (
	sessionCookie = "kavach_session"
	csrfCookie    = "kavach_csrf"
	// sessionIdle ends a session unused this long; sessionMax ends any.
	sessionIdle = 30 * time.Minute
	sessionMax  = 12 * time.Hour
	// maxSessions bounds memory; past it the oldest session goes.
	maxSessions = 4096
	// maxKeySessions bounds one key's sessions; past it that key's oldest
	// goes. Without it, any key that may log in (a decider key an agent
	// holds, say) could fill the table and push everyone else out.
	maxKeySessions = 16
)

type session struct {
	principal service.Principal
	// csrf is the token every form of this session carries.
	csrf     string
	created  time.Time
	lastSeen time.Time
}

type sessions struct {
	mu  sync.Mutex
	m   map[string]*session // by hex SHA-256 of the cookie's value
	now func() time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, now: now}
}

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for p and returns the cookie's value.
func (s *sessions) create(p service.Principal) string {
	id := randomToken()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	key := p.Actor.Type + "\x00" + p.Actor.ID
	mine := 0
	for _, v := range s.m {
		if v.key() == key {
			mine++
		}
	}
	switch {
	case mine >= maxKeySessions:
		s.dropOldest(func(v *session) bool { return v.key() == key })
	case len(s.m) >= maxSessions:
		s.dropOldest(func(*session) bool { return true })
	}
	s.m[hashID(id)] = &session{principal: p, csrf: randomToken(), created: now, lastSeen: now}
	return id
}

// get returns the live session the cookie's value names, and marks it used.
func (s *sessions) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[hashID(id)]
	if !ok {
		return session{}, false
	}
	if now.Sub(v.lastSeen) > sessionIdle || now.Sub(v.created) > sessionMax {
		delete(s.m, hashID(id))
		return session{}, false
	}
	v.lastSeen = now
	return *v, true
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, hashID(id))
}

// key names the credential of a session: sessions are capped per key.
func (v *session) key() string { return v.principal.Actor.Type + "\x00" + v.principal.Actor.ID }

// dropOldest ends the oldest session that match selects; the caller holds mu.
func (s *sessions) dropOldest(match func(*session) bool) {
	var oldestK string
	var oldest time.Time
	for k, v := range s.m {
		if match(v) && (oldestK == "" || v.created.Before(oldest)) {
			oldestK, oldest = k, v.created
		}
	}
	delete(s.m, oldestK)
}

// sweep drops expired sessions; the caller holds mu.
func (s *sessions) sweep(now time.Time) {
	for k, v := range s.m {
		if now.Sub(v.lastSeen) > sessionIdle || now.Sub(v.created) > sessionMax {
			delete(s.m, k)
		}
	}
}

// preToken is the CSRF token of the forms shown before a session exists
// (the login form, an approval link's page): an HMAC of the random value
// of the csrf cookie, so a cross-site form, which cannot read the cookie,
// cannot forge it, and a cookie planted from elsewhere is useless without
// the key.
func preToken(key []byte, cookie string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("kavach csrf\x00"))
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// setCookie writes a cookie of the pages: HttpOnly, SameSite=Strict, on
// /ui/ only, Secure when the browser reached us over TLS (or the public URL
// is HTTPS, behind a proxy that ends TLS).
func (u *UI) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	//nolint:gosec // G124: Secure is set under TLS; plain HTTP on loopback (the default) must still keep the cookie
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/ui/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || strings.HasPrefix(u.links.Base(), "https://")})
}

// csrfCookieValue returns the request's csrf cookie, setting a new one
// when there is none.
func (u *UI) csrfCookieValue(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 64 {
		return c.Value
	}
	v := randomToken()
	u.setCookie(w, r, csrfCookie, v, int(sessionMax/time.Second))
	return v
}

// checkPreToken checks the token of a form posted without a session.
func (u *UI) checkPreToken(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	return hmac.Equal([]byte(preToken(u.csrfKey, c.Value)), []byte(r.PostFormValue("csrf")))
}

// sameOrigin refuses a POST a browser says came from another site: the
// Fetch metadata header when the browser sends it, else Origin when set.
func (u *UI) sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" && r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return o == scheme+"://"+r.Host || (u.links.Base() != "" && o == originOf(u.links.Base()))
}
