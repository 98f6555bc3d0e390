package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kavach-dev/kavach/store"
)

// tokenStorage keeps codes, grants and tokens.
type tokenStorage interface {
	GetOAuthCode(ctx context.Context, codeHash string) (store.OAuthCode, error)
	RedeemOAuthCode(ctx context.Context, codeHash string, issue store.OAuthIssue) (store.OAuthGrant, error)
	GetOAuthRefreshToken(ctx context.Context, tokenHash string) (store.OAuthRefreshToken, store.OAuthGrant, error)
	RotateOAuthRefreshToken(ctx context.Context, oldHash string, issue store.OAuthIssue) error
	GetOAuthAccessToken(ctx context.Context, jti string) (store.OAuthAccessToken, store.OAuthGrant, error)
	RevokeOAuthAccessToken(ctx context.Context, jti string) error
	RevokeOAuthGrant(ctx context.Context, grantID string) error
}

// TokenResponse is the token endpoint's answer (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// accessClaims are an RFC 9068 access token's claims.
type accessClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Agent    string `json:"kavach_agent"`
}

// withExtra is an access token's claims with the configured additional
// ones, which Validate keeps from naming any claim accessClaims sets.
type withExtra struct {
	*accessClaims
	extra map[string]any
}

func (w withExtra) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(w.accessClaims)
	if err != nil || len(w.extra) == 0 {
		return b, err
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range w.extra {
		if _, set := all[k]; !set {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	resp, err := s.token(r, w)
	if err != nil {
		s.writeTokenError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) token(r *http.Request, w http.ResponseWriter) (TokenResponse, error) {
	if err := parseForm(w, r); err != nil {
		return TokenResponse{}, err
	}
	gt := r.PostForm.Get("grant_type")
	if gt == "" {
		return TokenResponse{}, errInvalidRequest("grant_type is required")
	}
	if gt != GrantAuthorizationCode && gt != GrantRefreshToken {
		return TokenResponse{}, oauthErr(http.StatusBadRequest, CodeUnsupportedGrantType, "grant_type %q is not supported", gt)
	}
	c, err := s.authenticateClient(r)
	if err != nil {
		return TokenResponse{}, err
	}
	if !contains(c.GrantTypes, gt) {
		return TokenResponse{}, oauthErr(http.StatusBadRequest, CodeUnauthorizedClient, "the client may not use grant_type %s", gt)
	}
	if gt == GrantAuthorizationCode {
		return s.codeGrant(r.Context(), c, r.PostForm.Get("code"), r.PostForm.Get("redirect_uri"),
			r.PostForm.Get("code_verifier"), r.PostForm.Get("resource"))
	}
	return s.refreshGrant(r.Context(), c, r.PostForm.Get("refresh_token"), r.PostForm.Get("scope"), r.PostForm.Get("resource"))
}

// codeGrant redeems an authorization code (RFC 6749 §4.1.3 with PKCE). A
// code presented twice with its right verifier revokes every token issued
// from it: the first use may have been an attacker's.
func (s *Server) codeGrant(ctx context.Context, c store.OAuthClient, code, redirect, verifier, resource string) (TokenResponse, error) {
	if code == "" {
		return TokenResponse{}, errInvalidRequest("code is required")
	}
	if verifier == "" {
		return TokenResponse{}, errInvalidRequest("code_verifier is required")
	}
	ac, err := s.st.GetOAuthCode(ctx, hash(code))
	if errors.Is(err, store.ErrNotFound) {
		return TokenResponse{}, errInvalidGrant("unknown authorization code")
	}
	if err != nil {
		return TokenResponse{}, fmt.Errorf("oauth: code: %w", err)
	}
	switch {
	case ac.ClientID != c.ID:
		return TokenResponse{}, errInvalidGrant("the code was issued to another client")
	case ac.RedirectParam != "" && redirect != ac.RedirectParam:
		return TokenResponse{}, errInvalidGrant("redirect_uri differs from the authorization request's")
	case ac.RedirectParam == "" && redirect != "" && redirect != ac.RedirectURI:
		return TokenResponse{}, errInvalidGrant("redirect_uri differs from the registered one")
	case !verifyPKCE(verifier, ac.CodeChallenge):
		return TokenResponse{}, errInvalidGrant("code_verifier does not match the code_challenge")
	case ac.UsedAt != nil:
		return TokenResponse{}, s.codeReplayed(ctx, ac.GrantID)
	case !s.now().Before(ac.ExpiresAt):
		return TokenResponse{}, errInvalidGrant("the authorization code has expired")
	}
	if _, err := s.resource(resource, ac.Resource); err != nil {
		return TokenResponse{}, err
	}
	g := store.OAuthGrant{ClientID: c.ID, UserID: ac.UserID, AgentID: ac.AgentID, Scopes: ac.Scopes, Resource: ac.Resource}
	resp, issue, err := s.issue(ctx, c, g, ac.Scopes)
	if err != nil {
		return TokenResponse{}, err
	}
	redeemed, err := s.st.RedeemOAuthCode(ctx, hash(code), issue)
	if errors.Is(err, store.ErrConflict) {
		return TokenResponse{}, s.codeReplayed(ctx, redeemed.ID)
	}
	if err != nil {
		return TokenResponse{}, fmt.Errorf("oauth: redeem code: %w", err)
	}
	return resp, nil
}

func (s *Server) codeReplayed(ctx context.Context, grantID string) error {
	if grantID != "" {
		if err := s.st.RevokeOAuthGrant(ctx, grantID); err != nil {
			return fmt.Errorf("oauth: revoke replayed code's grant: %w", err)
		}
	}
	return errInvalidGrant("the authorization code was already used; its tokens are revoked")
}

// refreshGrant rotates a refresh token (OAuth 2.1 §4.3). Presenting a
// rotated-out token revokes the whole grant.
func (s *Server) refreshGrant(ctx context.Context, c store.OAuthClient, token, scope, resource string) (TokenResponse, error) {
	if token == "" {
		return TokenResponse{}, errInvalidRequest("refresh_token is required")
	}
	rt, g, err := s.st.GetOAuthRefreshToken(ctx, hash(token))
	if errors.Is(err, store.ErrNotFound) {
		return TokenResponse{}, errInvalidGrant("unknown refresh token")
	}
	if err != nil {
		return TokenResponse{}, fmt.Errorf("oauth: refresh token: %w", err)
	}
	switch {
	case g.ClientID != c.ID:
		return TokenResponse{}, errInvalidGrant("the refresh token was issued to another client")
	case rt.RevokedAt != nil:
		return TokenResponse{}, errInvalidGrant("the refresh token is revoked")
	case rt.UsedAt != nil:
		return TokenResponse{}, s.refreshReplayed(ctx, g.ID)
	case !s.now().Before(rt.ExpiresAt):
		return TokenResponse{}, errInvalidGrant("the refresh token has expired")
	}
	scopes := g.Scopes
	if strings.TrimSpace(scope) != "" {
		scopes = spaceList(scope)
		if !subset(scopes, g.Scopes) {
			return TokenResponse{}, oauthErr(http.StatusBadRequest, CodeInvalidScope, "scope may narrow the grant's, not widen it")
		}
		if len(c.Scopes) > 0 && !subset(scopes, c.Scopes) {
			return TokenResponse{}, oauthErr(http.StatusBadRequest, CodeInvalidScope, "the client may no longer ask for some of these scopes")
		}
	} else if len(c.Scopes) > 0 {
		// The client's scopes, as configured now, bound a grant made
		// under a wider configuration.
		scopes = slices.DeleteFunc(slices.Clone(scopes), func(sc string) bool { return !contains(c.Scopes, sc) })
	}
	if _, err := s.resource(resource, g.Resource); err != nil {
		return TokenResponse{}, err
	}
	resp, issue, err := s.issue(ctx, c, g, scopes)
	if err != nil {
		return TokenResponse{}, err
	}
	err = s.st.RotateOAuthRefreshToken(ctx, hash(token), issue)
	if errors.Is(err, store.ErrConflict) {
		return TokenResponse{}, s.refreshReplayed(ctx, g.ID)
	}
	if err != nil {
		return TokenResponse{}, fmt.Errorf("oauth: rotate refresh token: %w", err)
	}
	return resp, nil
}

func (s *Server) refreshReplayed(ctx context.Context, grantID string) error {
	if err := s.st.RevokeOAuthGrant(ctx, grantID); err != nil {
		return fmt.Errorf("oauth: revoke replayed refresh token's grant: %w", err)
	}
	return errInvalidGrant("the refresh token was already used; the grant is revoked")
}

// maxHookClaims bounds a claims webhook's answer: the claims ride in every
// request the token is sent with.
const maxHookClaims = 8 << 10

// additionalClaims are the configured static claims and, after them, the
// claims hook's for this token.
func (s *Server) additionalClaims(ctx context.Context, c store.OAuthClient, g store.OAuthGrant, scopes []string) (map[string]any, error) {
	if s.cfg.ClaimsHook == nil {
		return s.cfg.AdditionalClaims, nil
	}
	fail := func(err error) error {
		return &Error{Code: CodeServerError, Description: "the claims webhook failed", Status: http.StatusInternalServerError, Err: err}
	}
	got, err := s.cfg.ClaimsHook(ctx, ClaimsRequest{UserID: g.UserID, ClientID: c.ID, AgentID: g.AgentID, Scopes: scopes, Resource: g.Resource})
	if err != nil {
		return nil, fail(fmt.Errorf("oauth: claims webhook: %w", err))
	}
	if err := checkClaims(got); err != nil {
		return nil, fail(fmt.Errorf("%w (from the claims webhook)", err))
	}
	if b, _ := json.Marshal(got); len(b) > maxHookClaims {
		return nil, fail(fmt.Errorf("oauth: the claims webhook answered %d bytes of claims; at most %d", len(b), maxHookClaims))
	}
	out := maps.Clone(s.cfg.AdditionalClaims)
	if out == nil {
		out = map[string]any{}
	}
	maps.Copy(out, got)
	return out, nil
}

// issue signs an access token for scopes of grant g and, if the grant has
// offline_access and the client may refresh, makes a refresh token.
func (s *Server) issue(ctx context.Context, c store.OAuthClient, g store.OAuthGrant, scopes []string) (TokenResponse, store.OAuthIssue, error) {
	now := s.now().Truncate(time.Second)
	exp := now.Add(s.cfg.AccessTokenTTL)
	jti := randomToken()
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.cfg.Issuer, Subject: g.UserID, Audience: jwt.ClaimStrings{g.Resource},
			ExpiresAt: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ID: jti,
		},
		ClientID: c.ID, Scope: strings.Join(scopes, " "), Agent: g.AgentID,
	}
	extra, err := s.additionalClaims(ctx, c, g, scopes)
	if err != nil {
		return TokenResponse{}, store.OAuthIssue{}, err
	}
	var signing jwt.Claims = &claims
	if len(extra) > 0 {
		signing = withExtra{&claims, extra}
	}
	signed, err := s.keys.sign(ctx, signing)
	if err != nil {
		return TokenResponse{}, store.OAuthIssue{}, fmt.Errorf("oauth: sign access token: %w", err)
	}
	resp := TokenResponse{AccessToken: signed, TokenType: "Bearer", ExpiresIn: int64(s.cfg.AccessTokenTTL / time.Second), Scope: claims.Scope}
	// The record is what Verify trusts: the token's claims must match it.
	issue := store.OAuthIssue{Access: store.OAuthAccessToken{JTI: jti, ClientID: c.ID, Scopes: scopes, ExpiresAt: exp}}
	if contains(g.Scopes, ScopeOfflineAccess) && contains(c.GrantTypes, GrantRefreshToken) {
		resp.RefreshToken = randomToken()
		issue.Refresh = &store.OAuthRefreshToken{Hash: hash(resp.RefreshToken), ExpiresAt: s.now().Add(s.cfg.RefreshTokenTTL)}
	}
	return resp, issue, nil
}
