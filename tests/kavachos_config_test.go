package tests

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// The mcp section as KavachOS writes it works in the real binary: scopes
// as a list of names with scopePermissions, a client with clientName and
// scope, static additionalClaims, and a claims webhook (a real receiver
// that verifies the Standard Webhooks signature) standing in for
// getAdditionalClaims.
func TestMCPKavachOSConfig(t *testing.T) {
	t.Parallel()
	const whKey = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, _ := base64.StdEncoding.DecodeString(whKey)
	var failing atomic.Bool
	var asked atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
		sec, _ := strconv.ParseInt(ts, 10, 64)
		if id == "" || r.Header.Get("webhook-signature") != want || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
			t.Errorf("claims request: id %q, signature %q; want a signature by the configured secret (%s)", id, r.Header.Get("webhook-signature"), want)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var in struct {
			Type string `json:"type"`
			Data struct {
				UserID   string   `json:"userId"`
				ClientID string   `json:"clientId"`
				AgentID  string   `json:"agentId"`
				Scopes   []string `json:"scopes"`
				Resource string   `json:"resource"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.Type != "mcp.claims" || in.Data.UserID != "user-9" ||
			in.Data.ClientID != "cli" || in.Data.AgentID == "" || in.Data.Resource != mcpResource {
			t.Errorf("claims request body %s; want type mcp.claims with the user, client, agent and resource", body)
		}
		asked.Add(1)
		if failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintf(w, `{"org": "org-of-%s", "scopesSeen": %d}`, in.Data.UserID, len(in.Data.Scopes))
	}))
	defer hook.Close()

	dir := t.TempDir()
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf(`
secret: `+mcpSecret+`
mcp:
  enabled: true
  issuer: %[1]s
  scopes: [mcp:read, mcp:write, profile]
  scopePermissions:
    mcp:read: [{resource: "mcp:github:*", actions: [read]}]
    mcp:write: [{resource: "mcp:github:*", actions: [write]}]
  allowedResources: [%[2]s]
  consentPage: https://app.example.test/consent
  additionalClaims: {tenant: acme}
  claimsWebhook: {url: %[3]s/claims, secret: whsec_%[4]s, timeout: 2s}
  preRegisteredClients:
    - clientId: cli
      clientName: Kavach CLI
      redirectUris: [https://app.example.test/cb]
      scope: mcp:read profile offline_access
`, issuer, mcpResource, hook.URL, whKey))
	s := start(t, "--database", filepath.Join(dir, "k.db"), "--config", cfg, "--addr", fmt.Sprintf("127.0.0.1:%d", port))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	app := keyed(s.mintKey(t, "consent-app", "approver").Key)

	var md map[string]any
	getJSON(t, http.DefaultClient, s.URL+"/.well-known/oauth-authorization-server", &md)
	if got := fmt.Sprint(md["scopes_supported"]); got != "[mcp:read mcp:write offline_access profile]" {
		t.Errorf("scopes_supported = %s; want the listed scopes and offline_access", got)
	}
	conf := &oauth2.Config{ClientID: "cli", RedirectURL: "https://app.example.test/cb",
		Endpoint: oauth2.Endpoint{AuthURL: md["authorization_endpoint"].(string), TokenURL: md["token_endpoint"].(string),
			AuthStyle: oauth2.AuthStyleInParams}}
	authorize := func(scope string) *http.Response {
		verifier := oauth2.GenerateVerifier()
		u := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("scope", scope))
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		resp.Header.Set("X-Verifier", verifier)
		return resp
	}
	exchange := func() (*oauth2.Token, error) {
		resp := authorize("") // none asked: the client's scopes
		page, _ := url.Parse(resp.Header.Get("Location"))
		var approved struct {
			RedirectURL string `json:"redirectUrl"`
		}
		postJSON(t, app, s.URL+"/v1/oauth/requests/"+page.Query().Get("request")+"/approve",
			map[string]any{"userId": "user-9"}, http.StatusOK, &approved)
		back, _ := url.Parse(approved.RedirectURL)
		return conf.Exchange(t.Context(), back.Query().Get("code"), oauth2.VerifierOption(resp.Header.Get("X-Verifier")))
	}
	tok, err := exchange()
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if got, _ := tok.Extra("scope").(string); got != "mcp:read profile offline_access" {
		t.Errorf("token scope = %q; want the client's scope", got)
	}
	claims := jwtClaims(t, tok.AccessToken)
	if claims["tenant"] != "acme" || claims["org"] != "org-of-user-9" || claims["scopesSeen"] != float64(3) || claims["sub"] != "user-9" {
		t.Errorf("access token claims = %v; want tenant (static), org and scopesSeen (webhook), sub user-9", claims)
	}
	// The listed scope's permissions decide; a scope the client was not
	// given cannot be asked for.
	authorizeAs(t, s, tok.AccessToken, "read", "mcp:github:repos", http.StatusOK, true)
	authorizeAs(t, s, tok.AccessToken, "write", "mcp:github:repos", http.StatusOK, false)
	if resp := authorize("mcp:write"); !strings.Contains(resp.Header.Get("Location"), "error=invalid_scope") {
		t.Errorf("asking beyond the client's scope: Location %q; want invalid_scope", resp.Header.Get("Location"))
	}
	// Refreshing asks the webhook again.
	before := asked.Load()
	if _, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Errorf("refresh: %v", err)
	}
	if asked.Load() != before+1 {
		t.Errorf("claims webhook asked %d times on refresh; want once", asked.Load()-before)
	}
	// The webhook failing fails the token request: no token without the
	// app's claims.
	failing.Store(true)
	var re *oauth2.RetrieveError
	if _, err := exchange(); !errors.As(err, &re) || re.ErrorCode != "server_error" || re.Response.StatusCode != http.StatusInternalServerError {
		t.Errorf("Exchange with the claims webhook down = %v; want 500 server_error", err)
	}
	if strings.Contains(s.log(), whKey) {
		t.Error("the claims webhook's secret is in the logs")
	}
}

// jwtClaims decodes a JWT's payload, unverified.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a JWT", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
