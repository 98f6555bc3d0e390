package oauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/secret"
	"github.com/kavach-dev/kavach/store"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// fakeAgents records grants in memory, as the service layer would in the
// agents table.
type fakeAgents struct {
	mu     sync.Mutex
	agents map[string]string // client|user → agent ID
	perms  map[string][]Permission
}

func (f *fakeAgents) GrantAgent(_ context.Context, clientID, _, userID string, perms []Permission) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := clientID + "|" + userID
	id, ok := f.agents[key]
	if !ok {
		id = "agt_" + clientID + "_" + userID
		f.agents[key] = id
	}
	f.perms[id] = perms
	return id, nil
}

const (
	testResource = "https://mcp.example.com/mcp"
	loginPage    = "https://app.example.com/login"
)

// mustSecret makes a secret.Secret of s (32+ characters).
func mustSecret(t testing.TB, s string) secret.Secret {
	t.Helper()
	sec, err := secret.New(s)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// testSecret is the harness's secret: it seals the signing keys.
const testSecret = "the harness's secret, 32 characters or more"

func testScopes() map[string][]Permission {
	return map[string][]Permission{
		"tools:read":  {{Resource: "mcp:github:*", Actions: []string{"read"}}},
		"tools:write": {{Resource: "mcp:github:issues", Actions: []string{"comment"}}, {Resource: "mcp:github:*", Actions: []string{"read"}}},
	}
}

// harness is a server on a loopback listener over a SQLite file store.
type harness struct {
	t      testing.TB
	srv    *Server
	ts     *httptest.Server
	st     *store.Store
	clock  *clock
	agents *fakeAgents
	issuer string
	http   *http.Client
}

// newHarness starts a server; issuerPath is appended to the listener's
// URL to make the issuer, and mutate adjusts the configuration.
func newHarness(t testing.TB, issuerPath string, mutate func(*Config)) *harness {
	t.Helper()
	return newHarnessOn(t, filepath.Join(t.TempDir(), "kavach.db"), issuerPath, mutate)
}

// newHarnessOn is newHarness over the store at storeURL.
func newHarnessOn(t testing.TB, storeURL, issuerPath string, mutate func(*Config)) *harness {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String() + issuerPath
	c := &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	st, err := store.Open(t.Context(), store.Options{URL: storeURL, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg := Config{
		Issuer: issuer, Scopes: testScopes(), AllowedResources: []string{testResource}, LoginPage: loginPage,
		Secret: mustSecret(t, testSecret),
		PreRegisteredClients: []Client{
			{ID: "pre-public", Name: "Pre Public", RedirectURIs: []string{"https://client.example.com/cb"}},
			{ID: "pre-secret", Secret: "s3cret-s3cret-s3cret", Name: "Pre Secret", RedirectURIs: []string{"https://client.example.com/cb"}},
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	agents := &fakeAgents{agents: map[string]string{}, perms: map[string][]Permission{}}
	srv, err := New(t.Context(), cfg, st, agents, Options{Now: c.Now})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", srv.Handler())
	mux.Handle("/v1/oauth/", srv.ConsentHandler())
	ts.Config.Handler = mux
	ts.Start()
	t.Cleanup(ts.Close)
	cl := ts.Client()
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &harness{t: t, srv: srv, ts: ts, st: st, clock: c, agents: agents, issuer: issuer, http: cl}
}

func (h *harness) url(path string) string { return h.ts.URL + path }

// do sends a request and returns the response with its body read.
func (h *harness) do(req *http.Request) (*http.Response, []byte) {
	h.t.Helper()
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, b
}

func (h *harness) get(path string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.t.Context(), http.MethodGet, h.url(path), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.do(req)
}

func (h *harness) postJSON(path string, body any) (*http.Response, []byte) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), http.MethodPost, h.url(path), rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return h.do(req)
}

// postForm posts a form; basic, if set, is client_id and secret for Basic.
func (h *harness) postForm(path string, form url.Values, basic ...string) (*http.Response, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.t.Context(), http.MethodPost, h.url(path), strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, b := h.do(req)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			h.t.Fatalf("POST %s: body %q is not JSON: %v", path, b, err)
		}
	}
	return resp, m
}

// registerPublic registers a public client and returns its ID.
func (h *harness) registerPublic(redirects ...string) string {
	h.t.Helper()
	resp, b := h.postJSON("/oauth/register", map[string]any{"redirect_uris": redirects, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "client_name": "Test Client"})
	if resp.StatusCode != http.StatusCreated {
		h.t.Fatalf("register = %d %s; want 201", resp.StatusCode, b)
	}
	var r RegistrationResponse
	if err := json.Unmarshal(b, &r); err != nil {
		h.t.Fatal(err)
	}
	return r.ClientID
}

func challengeOf(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

const testVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-0123456789"

// authorizeParams is a valid authorization request.
func authorizeParams(clientID, redirect, scope string) url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect}, "scope": {scope},
		"state": {"xyz"}, "code_challenge": {challengeOf(testVerifier)}, "code_challenge_method": {"S256"}}
}

// handle sends an authorization request and returns the request handle
// from the login-page redirect.
func (h *harness) handle(q url.Values) string {
	h.t.Helper()
	resp, b := h.get("/oauth/authorize?" + q.Encode())
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, loginPage+"?request=") {
		h.t.Fatalf("authorize = %d Location %q %s; want 302 to the login page", resp.StatusCode, loc, b)
	}
	u, _ := url.Parse(loc)
	return u.Query().Get("request")
}

// approve approves a request for user with scopes and returns the redirect.
func (h *harness) approve(handle, user string, scopes []string) *url.URL {
	h.t.Helper()
	resp, b := h.postJSON("/v1/oauth/requests/"+handle+"/approve", map[string]any{"userId": user, "scopes": scopes})
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("approve = %d %s; want 200", resp.StatusCode, b)
	}
	var out struct{ RedirectURL string }
	if err := json.Unmarshal(b, &out); err != nil {
		h.t.Fatal(err)
	}
	u, err := url.Parse(out.RedirectURL)
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

// code runs authorize and approval and returns the code.
func (h *harness) code(clientID, redirect, scope string) string {
	h.t.Helper()
	u := h.approve(h.handle(authorizeParams(clientID, redirect, scope)), "user-1", nil)
	return u.Query().Get("code")
}

func codeForm(clientID, code, redirect string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
		"redirect_uri": {redirect}, "code_verifier": {testVerifier}}
}

// tokens runs the whole flow and returns the token response.
func (h *harness) tokens(clientID, redirect, scope string) map[string]any {
	h.t.Helper()
	resp, m := h.postForm("/oauth/token", codeForm(clientID, h.code(clientID, redirect, scope), redirect))
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("token = %d %v; want 200", resp.StatusCode, m)
	}
	return m
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// ConsentHandler serves the consent API for the app, under /v1/oauth:
//
//	GET  /v1/oauth/requests/{handle}
//	POST /v1/oauth/requests/{handle}/approve  {"userId": "...", "scopes": ["..."]}
//	POST /v1/oauth/requests/{handle}/deny
//
// It trusts its caller: a test stand-in for the sidecar's consent API,
// which checks the caller's key first.
func (s *Server) ConsentHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/oauth/requests/{handle}", func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Request(r.Context(), r.PathValue("handle"))
		s.answer(w, r, p, err)
	})
	mux.HandleFunc("POST /v1/oauth/requests/{handle}/approve", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			UserID string   `json:"userId"`
			Scopes []string `json:"scopes"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			s.answer(w, r, nil, apperr.New(apperr.Invalid, "invalid_body", "the body must be {\"userId\": \"...\", \"scopes\": [\"...\"]}"))
			return
		}
		u, err := s.Approve(r.Context(), r.PathValue("handle"), body.UserID, body.Scopes)
		s.answer(w, r, map[string]string{"redirectUrl": u}, err)
	})
	mux.HandleFunc("POST /v1/oauth/requests/{handle}/deny", func(w http.ResponseWriter, r *http.Request) {
		u, err := s.Deny(r.Context(), r.PathValue("handle"))
		s.answer(w, r, map[string]string{"redirectUrl": u}, err)
	})
	return mux
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, v any, err error) {
	w.Header().Set("Cache-Control", "no-store")
	if err == nil {
		writeJSON(w, http.StatusOK, v)
		return
	}
	// The sidecar maps the consent API's errors (sidecar.Server.fail);
	// this stands in for it with the statuses it gives these kinds.
	status := map[apperr.Kind]int{apperr.Invalid: http.StatusBadRequest, apperr.NotFound: http.StatusNotFound, apperr.Conflict: http.StatusConflict}
	re, ok := apperr.As(err)
	if !ok || status[re.Kind] == 0 {
		s.log.ErrorContext(r.Context(), "oauth consent API failed", "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"code": "internal", "message": "internal error"})
		return
	}
	writeJSON(w, status[re.Kind], map[string]string{"code": re.Code, "message": re.Message})
}
