package oauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kavach-dev/kavach/secret"
)

const redirectCB = "https://client.example.com/cb"

func TestVerifyAndChallenge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	m := h.tokens("pre-public", redirectCB, "tools:read offline_access")
	at := str(m, "access_token")
	c, err := h.srv.Verify(t.Context(), at, testResource, []string{"tools:read"})
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if c.AgentID != "agt_pre-public_user-1" || c.Subject != "user-1" || c.ClientID != "pre-public" || c.JTI == "" ||
		!slices.Equal(c.Scopes, []string{"tools:read", "offline_access"}) || !c.ExpiresAt.Equal(h.clock.Now().Add(time.Hour)) {
		t.Errorf("Verify = %+v; want the grant's agent, user, client, scopes and a one-hour expiry", c)
	}

	// The token is an RFC 9068 JWT.
	parts := strings.Split(at, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var header map[string]any
	_ = json.Unmarshal(hdr, &header)
	if header["typ"] != "at+jwt" || header["alg"] != "ES256" || header["kid"] == "" {
		t.Errorf("JWT header = %v; want typ at+jwt, alg ES256, a kid", header)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "kavach_agent"} {
		if claims[k] == nil {
			t.Errorf("JWT claims %v lack %s", claims, k)
		}
	}
	if claims["iss"] != h.issuer {
		t.Errorf("iss = %v; want %s", claims["iss"], h.issuer)
	}

	// A handler behind the middleware.
	protected := httptest.NewServer(h.srv.RequireToken(testResource, "tools:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := ClaimsFrom(r.Context())
		_, _ = w.Write([]byte(c.AgentID))
	})))
	t.Cleanup(protected.Close)
	writeOnly := httptest.NewServer(h.srv.RequireToken(testResource, "tools:write")(http.NotFoundHandler()))
	t.Cleanup(writeOnly.Close)

	forged := func() string {
		p := strings.Split(at, ".")
		return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("not a signature, not at all......"))
	}()
	hsToken := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": h.issuer, "sub": "u", "aud": testResource,
			"exp": h.clock.Now().Add(time.Hour).Unix(), "iat": h.clock.Now().Unix(), "jti": "x", "client_id": "pre-public"})
		tok.Header["typ"] = "at+jwt"
		s, _ := tok.SignedString([]byte(strings.Repeat("k", 32)))
		return s
	}()
	tests := []struct {
		name   string
		server *httptest.Server
		auth   string
		status int
		// want lists fragments of WWW-Authenticate; body is the handler's answer.
		want []string
		body string
	}{
		{"valid", protected, "Bearer " + at, 200, nil, "agt_pre-public_user-1"},
		{"no token", protected, "", 401, []string{`Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`}, ""},
		{"garbage token", protected, "Bearer abc.def.ghi", 401, []string{`resource_metadata="`, `error="invalid_token"`}, ""},
		{"forged signature", protected, "Bearer " + forged, 401, []string{`error="invalid_token"`}, ""},
		{"HS256 with a guessed key (alg confusion)", protected, "Bearer " + hsToken, 401, []string{`error="invalid_token"`}, ""},
		{"another scheme", protected, "Basic abc", 401, []string{`Bearer resource_metadata="`}, ""},
		{"malformed Bearer header", protected, "Bearer a b", 400, []string{`error="invalid_request"`}, ""},
		{"insufficient scope", writeOnly, "Bearer " + at, 403, []string{`error="insufficient_scope"`, `scope="tools:write"`, `resource_metadata="`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, tt.server.URL, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, b := h.do(req)
			if resp.StatusCode != tt.status {
				t.Fatalf("GET = %d %s; want %d", resp.StatusCode, b, tt.status)
			}
			wa := resp.Header.Get("WWW-Authenticate")
			for _, w := range tt.want {
				if !strings.Contains(wa, w) {
					t.Errorf("WWW-Authenticate = %q; want it to contain %q", wa, w)
				}
			}
			if (tt.name == "no token" || tt.name == "another scheme") && strings.Contains(wa, "error=") {
				t.Errorf("WWW-Authenticate = %q; want no error without a token", wa)
			}
			if tt.body != "" && string(b) != tt.body {
				t.Errorf("body = %q; want %q", b, tt.body)
			}
		})
	}

	if _, err := h.srv.Verify(t.Context(), at, "https://other.example.com/", nil); !isCode(err, CodeInvalidToken) {
		t.Errorf("Verify(for another resource) = %v; want invalid_token", err)
	}
	h.clock.Add(time.Hour)
	if _, err := h.srv.Verify(t.Context(), at, testResource, nil); !isCode(err, CodeInvalidToken) {
		t.Errorf("Verify(expired) = %v; want invalid_token", err)
	}
}

// TestRevokedTokenRefusedAtOnce revokes on one server and checks another
// sharing the database (a second replica) refuses the token at once.
func TestRevokedTokenRefusedAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	replica, err := New(t.Context(), h.srv.Config(), h.st, h.agents, Options{Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	m := h.tokens("pre-public", redirectCB, "tools:read offline_access")
	at := str(m, "access_token")
	for _, s := range []*Server{h.srv, replica} {
		if _, err := s.Verify(t.Context(), at, testResource, nil); err != nil {
			t.Fatalf("Verify before revocation = %v", err)
		}
	}
	resp, _ := h.postForm("/oauth/revoke", url.Values{"client_id": {"pre-public"}, "token": {at}})
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("revoke = %d; want 200 no-store", resp.StatusCode)
	}
	for i, s := range []*Server{h.srv, replica} {
		if _, err := s.Verify(t.Context(), at, testResource, nil); !isCode(err, CodeInvalidToken) {
			t.Errorf("Verify on replica %d after revocation = %v; want invalid_token", i, err)
		}
	}
	// Revoking an access token leaves the refresh token usable.
	if resp, m := h.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"pre-public"},
		"refresh_token": {str(m, "refresh_token")}}); resp.StatusCode != 200 {
		t.Errorf("refresh after access token revocation = %d %v; want 200", resp.StatusCode, m)
	}
}

func TestRevocationAndIntrospection(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	m := h.tokens("pre-public", redirectCB, "tools:read offline_access")
	at, rt := str(m, "access_token"), str(m, "refresh_token")
	otherForm := codeForm("pre-secret", h.code("pre-secret", redirectCB, "tools:read"), redirectCB)
	otherForm.Set("client_secret", "s3cret-s3cret-s3cret")
	_, other := h.postForm("/oauth/token", otherForm)
	introspect := func(token string, basic ...string) (*http.Response, map[string]any) {
		f := url.Values{"token": {token}}
		if len(basic) == 0 {
			f.Set("client_id", "pre-public")
		}
		return h.postForm("/oauth/introspect", f, basic...)
	}
	resp, in := introspect(at)
	if resp.StatusCode != 200 || in["active"] != true || in["client_id"] != "pre-public" || in["sub"] != "user-1" ||
		in["aud"] != testResource || in["iss"] != h.issuer || in["scope"] != "tools:read offline_access" ||
		in["jti"] == nil || in["exp"] == nil || in["iat"] == nil || in["token_type"] != "Bearer" {
		t.Errorf("introspect(access) = %d %v; want active with its claims", resp.StatusCode, in)
	}
	if _, in := introspect(rt); in["active"] != true || in["token_type"] != "refresh_token" {
		t.Errorf("introspect(refresh) = %v; want active", in)
	}
	inactive := []struct {
		name  string
		token string
		basic []string
	}{
		{"garbage", "garbage", nil},
		{"other client's", str(other, "access_token"), nil},
		{"asked by its client's other", at, []string{"pre-secret", "s3cret-s3cret-s3cret"}},
	}
	for _, tt := range inactive {
		if resp, in := introspect(tt.token, tt.basic...); resp.StatusCode != 200 || len(in) != 1 || in["active"] != false {
			t.Errorf("introspect(%s) = %d %v; want exactly {active: false}", tt.name, resp.StatusCode, in)
		}
	}
	if resp, in := h.postForm("/oauth/introspect", url.Values{"token": {at}, "client_id": {"nope"}}); resp.StatusCode != 401 || in["error"] != "invalid_client" {
		t.Errorf("introspect by an unknown client = %d %v; want 401 invalid_client", resp.StatusCode, in)
	}
	if resp, in := h.postForm("/oauth/introspect", url.Values{"token": {at}}, "pre-secret", "wrong"); resp.StatusCode != 401 ||
		!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") || in["error"] != "invalid_client" {
		t.Errorf("introspect with a wrong Basic secret = %d %v; want 401 with a Basic challenge", resp.StatusCode, in)
	}

	// Another client cannot revoke the token; unknown tokens are fine.
	for _, f := range []url.Values{{"token": {at}}, {"token": {"unknown"}}} {
		if resp, _ := h.postForm("/oauth/revoke", f, "pre-secret", "s3cret-s3cret-s3cret"); resp.StatusCode != 200 {
			t.Errorf("revoke(%v) = %d; want 200", f, resp.StatusCode)
		}
	}
	if _, in := introspect(at); in["active"] != true {
		t.Errorf("introspect after another client's revocation = %v; want still active", in)
	}
	if resp, in := h.postForm("/oauth/revoke", url.Values{"client_id": {"pre-public"}}); resp.StatusCode != 400 || in["error"] != "invalid_request" {
		t.Errorf("revoke without token = %d %v; want invalid_request", resp.StatusCode, in)
	}
	// Revoking the refresh token revokes the grant: both go inactive.
	if resp, _ := h.postForm("/oauth/revoke", url.Values{"client_id": {"pre-public"}, "token": {rt}, "token_type_hint": {"refresh_token"}}); resp.StatusCode != 200 {
		t.Fatalf("revoke(refresh) = %d; want 200", resp.StatusCode)
	}
	for _, tok := range []string{at, rt} {
		if _, in := introspect(tok); len(in) != 1 || in["active"] != false {
			t.Errorf("introspect after revocation = %v; want {active: false}", in)
		}
	}
	if _, err := h.srv.Verify(t.Context(), at, testResource, nil); !isCode(err, CodeInvalidToken) {
		t.Errorf("Verify after the grant's revocation = %v; want invalid_token", err)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	jwks := func() []JWK {
		resp, b := h.get("/oauth/jwks")
		var set struct{ Keys []JWK }
		if resp.StatusCode != 200 || json.Unmarshal(b, &set) != nil {
			t.Fatalf("GET jwks = %d %s", resp.StatusCode, b)
		}
		return set.Keys
	}
	keys := jwks()
	if len(keys) != 1 || keys[0].Kty != "EC" || keys[0].Crv != "P-256" || keys[0].Alg != "ES256" || keys[0].Kid == "" {
		t.Fatalf("jwks = %+v; want one P-256 key", keys)
	}
	// A replica starting on the same database uses the same key.
	replica, err := New(t.Context(), h.srv.Config(), h.st, h.agents, Options{Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := replica.JWKS(t.Context()); len(k) != 1 || k[0].Kid != keys[0].Kid {
		t.Errorf("replica JWKS = %+v; want the same key %s", k, keys[0].Kid)
	}
	before := str(h.tokens("pre-public", redirectCB, "tools:read"), "access_token")
	if err := replica.RotateKey(t.Context()); err != nil {
		t.Fatalf("RotateKey = %v", err)
	}
	keys = jwks()
	if len(keys) != 2 {
		t.Fatalf("jwks after rotation = %+v; want the new and the old key", keys)
	}
	after := str(h.tokens("pre-public", redirectCB, "tools:read"), "access_token")
	if kidOf(after) != keys[0].Kid || kidOf(before) != keys[1].Kid {
		t.Errorf("kids: before %s, after %s; want %s then %s", kidOf(before), kidOf(after), keys[1].Kid, keys[0].Kid)
	}
	for _, s := range []*Server{h.srv, replica} {
		for _, tok := range []string{before, after} {
			if _, err := s.Verify(t.Context(), tok, testResource, nil); err != nil {
				t.Errorf("Verify across rotation = %v", err)
			}
		}
	}
	h.clock.Add(time.Hour + time.Second)
	if keys := jwks(); len(keys) != 1 {
		t.Errorf("jwks once the old key's tokens expired = %+v; want only the new key", keys)
	}
}

func kidOf(token string) string {
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var m map[string]any
	_ = json.Unmarshal(hdr, &m)
	s, _ := m["kid"].(string)
	return s
}

func TestHS256(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("0123456789abcdef", 2)
	h := newHarness(t, "", func(c *Config) { c.SigningSecret = secret })
	resp, b := h.get("/oauth/jwks")
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"keys":[]}` {
		t.Errorf("jwks with HS256 = %d %s; want an empty key set", resp.StatusCode, b)
	}
	at := str(h.tokens("pre-public", redirectCB, "tools:read"), "access_token")
	tok, err := jwt.Parse(at, func(*jwt.Token) (any, error) { return []byte(secret), nil }, jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithTimeFunc(h.clock.Now))
	if err != nil || tok.Header["typ"] != "at+jwt" {
		t.Fatalf("parse HS256 token = %v, header %v", err, tok.Header)
	}
	if _, err := h.srv.Verify(t.Context(), at, testResource, nil); err != nil {
		t.Errorf("Verify(HS256) = %v", err)
	}
	if err := h.srv.RotateKey(t.Context()); err == nil {
		t.Error("RotateKey with HS256 succeeded; want ErrNoKeyRotation")
	}
}

// TestVerifyClockSkew: a replica whose clock runs slightly behind the
// issuing one accepts a fresh token (iat and nbf a little in its future);
// one far behind refuses it; expiry stays exact.
func TestVerifyClockSkew(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	h.clock.Add(900 * time.Millisecond) // iat is truncated to the second
	at := str(h.tokens("pre-public", redirectCB, "tools:read"), "access_token")
	replicaAt := func(offset time.Duration) *Server {
		c := &clock{t: h.clock.Now().Add(offset)}
		s, err := New(t.Context(), h.srv.Config(), h.st, h.agents, Options{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, offset := range []time.Duration{-950 * time.Millisecond, -5 * time.Second, -maxClockSkew + time.Second} {
		if _, err := replicaAt(offset).Verify(t.Context(), at, testResource, nil); err != nil {
			t.Errorf("Verify on a replica %v behind = %v; want the token accepted", -offset, err)
		}
	}
	if _, err := replicaAt(-maxClockSkew-2*time.Second).Verify(t.Context(), at, testResource, nil); !isCode(err, CodeInvalidToken) {
		t.Errorf("Verify on a replica far behind = %v; want invalid_token", err)
	}
	exp := h.clock.Now().Truncate(time.Second).Add(DefaultAccessTokenTTL)
	if _, err := replicaAt(exp.Sub(h.clock.Now())-time.Millisecond).Verify(t.Context(), at, testResource, nil); err != nil {
		t.Errorf("Verify just before exp = %v; want accepted", err)
	}
	if _, err := replicaAt(exp.Sub(h.clock.Now())).Verify(t.Context(), at, testResource, nil); !isCode(err, CodeInvalidToken) {
		t.Errorf("Verify at exp = %v; want invalid_token (no leeway on expiry)", err)
	}
}

// A store that fails while a token's key is looked up is the server's
// fault: not invalid_token (401), which would tell a valid client to
// start over, but an internal error (500).
func TestKeyLookupFailureIsNotInvalidToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": h.issuer, "sub": "u", "exp": h.clock.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "not-cached"
	tok.Header["typ"] = "at+jwt"
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	_ = h.st.Close()
	_, err = h.srv.Verify(t.Context(), raw, "", nil)
	var oe *Error
	if err == nil || errors.As(err, &oe) || !errors.Is(err, errKeyStore) {
		t.Errorf("Verify with the store down = %v; want a key-store error, not an OAuth error", err)
	}
	w := httptest.NewRecorder()
	h.srv.Challenge(w, testResource, err)
	if w.Code != http.StatusInternalServerError {
		t.Errorf("Challenge = %d; want 500", w.Code)
	}
}

// privateKeyOf reads the signing key kid from the store and opens it with
// the harness's secret: what an attacker holding the database and the
// secret (or a key leaked before keys were sealed) would have.
func (h *harness) privateKeyOf(kid string) *ecdsa.PrivateKey {
	h.t.Helper()
	keys, err := h.st.ListOAuthKeys(h.t.Context(), algES256, time.Time{})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID != kid {
			continue
		}
		der, _, err := secret.Open(secret.KeyEncryption, k.PrivateKey, keyAAD(k.ID, k.Alg), mustSecret(h.t, testSecret))
		if err != nil {
			h.t.Fatalf("open signing key %s: %v", kid, err)
		}
		p, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			h.t.Fatal(err)
		}
		return p.(*ecdsa.PrivateKey)
	}
	h.t.Fatalf("no signing key %s", kid)
	return nil
}

// resign signs token's claims, changed by mutate, with key under the same
// kid.
func resign(t *testing.T, token string, key *ecdsa.PrivateKey, mutate func(jwt.MapClaims)) string {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		t.Fatal(err)
	}
	mutate(claims)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = kidOf(token)
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestResignedTokenRefused: even with the real signing key, a live jti
// re-signed with other claims (another user's agent, more scopes, another
// resource or client, a later expiry) is refused: Verify takes them from
// the token's record, not from the token. The same claims re-signed (the
// key is the real one) are accepted.
func TestResignedTokenRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", func(c *Config) { c.AllowedResources = []string{testResource, "https://other.example.com/mcp"} })
	q := authorizeParams("pre-public", redirectCB, "tools:read")
	q.Set("resource", testResource)
	resp, m := h.postForm("/oauth/token", codeForm("pre-public", h.approve(h.handle(q), "user-1", nil).Query().Get("code"), redirectCB))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token = %d %v", resp.StatusCode, m)
	}
	live := str(m, "access_token")
	// Another user's agent exists: the target of the forgery.
	if _, err := h.agents.GrantAgent(t.Context(), "pre-secret", "", "user-2", nil); err != nil {
		t.Fatal(err)
	}
	key := h.privateKeyOf(kidOf(live))

	same := resign(t, live, key, func(jwt.MapClaims) {})
	for name, tok := range map[string]string{"as issued": live, "re-signed unchanged": same} {
		c, err := h.srv.Verify(t.Context(), tok, testResource, nil)
		if err != nil || c.AgentID != "agt_pre-public_user-1" || c.Subject != "user-1" || !slices.Equal(c.Scopes, []string{"tools:read"}) {
			t.Errorf("Verify(%s) = %+v, %v; want user-1's agent with tools:read", name, c, err)
		}
	}
	forgeries := map[string]func(jwt.MapClaims){
		"another agent":          func(c jwt.MapClaims) { c["kavach_agent"] = "agt_pre-secret_user-2" },
		"another user":           func(c jwt.MapClaims) { c["sub"] = "user-2" },
		"another user and agent": func(c jwt.MapClaims) { c["sub"], c["kavach_agent"] = "user-2", "agt_pre-secret_user-2" },
		"more scopes":            func(c jwt.MapClaims) { c["scope"] = "tools:read tools:write" },
		"other scopes":           func(c jwt.MapClaims) { c["scope"] = "tools:write" },
		"another resource":       func(c jwt.MapClaims) { c["aud"] = "https://other.example.com/mcp" },
		"two resources":          func(c jwt.MapClaims) { c["aud"] = []string{testResource, "https://other.example.com/mcp"} },
		"another client":         func(c jwt.MapClaims) { c["client_id"] = "pre-secret" },
		"a later expiry":         func(c jwt.MapClaims) { c["exp"] = h.clock.Now().Add(24 * time.Hour).Unix() },
		"no agent":               func(c jwt.MapClaims) { delete(c, "kavach_agent") },
	}
	for name, mutate := range forgeries {
		forged := resign(t, live, key, mutate)
		if c, err := h.srv.Verify(t.Context(), forged, "", nil); !isCode(err, CodeInvalidToken) {
			t.Errorf("Verify(re-signed with %s) = %+v, %v; want invalid_token", name, c, err)
		}
		if in, err := h.srv.Introspect(t.Context(), "pre-public", forged); err != nil || in.Active {
			t.Errorf("Introspect(re-signed with %s) = %+v, %v; want inactive", name, in, err)
		}
	}
	// A forged client_id does not let another client revoke the token.
	if err := h.srv.Revoke(t.Context(), "pre-secret", resign(t, live, key, forgeries["another client"]), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.Verify(t.Context(), live, testResource, nil); err != nil {
		t.Errorf("Verify after another client's forged revocation = %v; want still live", err)
	}
	// Revoked, the token is refused however it is signed.
	if err := h.srv.Revoke(t.Context(), "pre-public", live, ""); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{live, same} {
		if _, err := h.srv.Verify(t.Context(), tok, testResource, nil); !isCode(err, CodeInvalidToken) {
			t.Errorf("Verify(revoked) = %v; want invalid_token", err)
		}
	}
}
