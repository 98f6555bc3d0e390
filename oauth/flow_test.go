package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestFullFlowWithXOAuth2 is an MCP client's whole journey, with
// golang.org/x/oauth2 as the client: discovery, registration, PKCE S256,
// consent, code exchange, refresh rotation, introspection, revocation.
func TestFullFlowWithXOAuth2(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "/tenant", nil)
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, h.http)

	// Discovery: the resource's metadata names the issuer, whose metadata
	// (path-inserted, as the issuer has a path) names the endpoints.
	resp, b := h.get("/.well-known/oauth-protected-resource/mcp")
	var prm ResourceMetadata
	if resp.StatusCode != 200 || json.Unmarshal(b, &prm) != nil || len(prm.AuthorizationServers) != 1 {
		t.Fatalf("resource metadata = %d %s", resp.StatusCode, b)
	}
	iss, _ := url.Parse(prm.AuthorizationServers[0])
	resp, b = h.get("/.well-known/oauth-authorization-server" + iss.Path)
	var md Metadata
	if resp.StatusCode != 200 || json.Unmarshal(b, &md) != nil || md.Issuer != h.issuer {
		t.Fatalf("metadata = %d %s; want issuer %s", resp.StatusCode, b, h.issuer)
	}

	// Registration: a public client with a loopback redirect.
	regBody, _ := json.Marshal(map[string]any{"redirect_uris": []string{"http://127.0.0.1/callback"}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "client_name": "x/oauth2"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, md.RegistrationEndpoint, strings.NewReader(string(regBody)))
	req.Header.Set("Content-Type", "application/json")
	resp, b = h.do(req)
	var reg RegistrationResponse
	if resp.StatusCode != 201 || json.Unmarshal(b, &reg) != nil {
		t.Fatalf("register = %d %s", resp.StatusCode, b)
	}

	conf := &oauth2.Config{
		ClientID:    reg.ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: md.AuthorizationEndpoint, TokenURL: md.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: "http://127.0.0.1:49152/callback", // any port: RFC 8252
		Scopes:      []string{"tools:read", "offline_access"},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", testResource))
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	resp, _ = h.do(req)
	login, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || login.Host != "app.example.com" {
		t.Fatalf("authorize = %d %s; want the login page", resp.StatusCode, login)
	}

	// The app logs the human in and approves.
	back := h.approve(login.Query().Get("request"), "user-42", nil)
	if back.Host != "127.0.0.1:49152" || back.Query().Get("state") != "state-123" || back.Query().Get("iss") != md.Issuer {
		t.Fatalf("redirect back = %s; want the client's port, state and iss", back)
	}

	tok, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange = %v", err)
	}
	if tok.TokenType != "Bearer" || tok.RefreshToken == "" || tok.Extra("scope") != "tools:read offline_access" {
		t.Fatalf("Exchange = %+v; want a bearer token with a refresh token", tok)
	}
	claims, err := h.srv.Verify(ctx, tok.AccessToken, testResource, []string{"tools:read"})
	if err != nil || claims.Subject != "user-42" || claims.ClientID != reg.ClientID || claims.AgentID == "" {
		t.Fatalf("Verify = %+v, %v", claims, err)
	}
	if perms := h.agents.perms[claims.AgentID]; len(perms) != 1 || perms[0].Resource != "mcp:github:*" {
		t.Errorf("agent %s permissions = %+v; want tools:read's", claims.AgentID, perms)
	}

	// Refresh: x/oauth2 refreshes an expired token and gets a rotated one.
	stale := &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}
	fresh, err := conf.TokenSource(ctx, stale).Token()
	if err != nil {
		t.Fatalf("refresh = %v", err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || fresh.RefreshToken == "" {
		t.Fatalf("refresh = %+v; want new access and refresh tokens", fresh)
	}
	c2, err := h.srv.Verify(ctx, fresh.AccessToken, testResource, nil)
	if err != nil || c2.AgentID != claims.AgentID {
		t.Fatalf("Verify(refreshed) = %+v, %v; want the same agent", c2, err)
	}

	// Introspection, then revocation of the refresh token (the grant).
	_, in := h.postForm(strings.TrimPrefix(md.IntrospectionEndpoint, h.ts.URL), url.Values{"client_id": {reg.ClientID}, "token": {fresh.AccessToken}})
	if in["active"] != true || in["sub"] != "user-42" || in["kavach_agent"] != claims.AgentID {
		t.Fatalf("introspect = %v; want active", in)
	}
	resp, _ = h.postForm(strings.TrimPrefix(md.RevocationEndpoint, h.ts.URL), url.Values{"client_id": {reg.ClientID}, "token": {fresh.RefreshToken}})
	if resp.StatusCode != 200 {
		t.Fatalf("revoke = %d", resp.StatusCode)
	}
	_, in = h.postForm(strings.TrimPrefix(md.IntrospectionEndpoint, h.ts.URL), url.Values{"client_id": {reg.ClientID}, "token": {fresh.AccessToken}})
	if in["active"] != false {
		t.Errorf("introspect after revocation = %v; want inactive", in)
	}
	if _, err := h.srv.Verify(ctx, fresh.AccessToken, testResource, nil); !isCode(err, CodeInvalidToken) {
		t.Errorf("Verify after revocation = %v; want invalid_token", err)
	}
	stale.RefreshToken = fresh.RefreshToken
	var re *oauth2.RetrieveError
	if _, err := conf.TokenSource(ctx, stale).Token(); err == nil {
		t.Error("refresh with a revoked grant succeeded")
	} else if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("refresh with a revoked grant = %v; want invalid_grant", err)
	}

	// The JWKS the metadata names verifies the tokens' key.
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, md.JWKSURI, nil)
	resp, b = h.do(req)
	var set struct{ Keys []JWK }
	// A token without a kid would match a key without one: both must be set.
	kid := kidOf(tok.AccessToken)
	if resp.StatusCode != 200 || json.Unmarshal(b, &set) != nil || kid == "" || !slices.ContainsFunc(set.Keys, func(k JWK) bool { return k.Kid == kid }) {
		t.Errorf("jwks = %d %s; want the token's kid %s", resp.StatusCode, b, kidOf(tok.AccessToken))
	}
}
