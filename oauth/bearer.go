package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kavach-dev/kavach/store"
)

// Claims is what a valid access token says.
type Claims struct {
	// AgentID is the delegated agent of the (client, user) grant.
	AgentID   string
	Subject   string
	ClientID  string
	Scopes    []string
	Audience  []string
	JTI       string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// ErrNoToken means the request carried no bearer token: the challenge has
// no error code (RFC 6750 §3.1).
var ErrNoToken = errors.New("oauth: no bearer token")

func invalidToken(format string, args ...any) *Error {
	return oauthErr(http.StatusUnauthorized, CodeInvalidToken, format, args...)
}

// maxClockSkew is how far in this server's future a token's iat and nbf
// may be: the replica that issued it may have a clock slightly ahead.
// Expiry is exact.
const maxClockSkew = time.Minute

// parseAccessToken checks an access token's signature, type, issuer and
// lifetime, not its audience or revocation.
func (s *Server) parseAccessToken(ctx context.Context, raw string) (*accessClaims, error) {
	var ac accessClaims
	// The leeway applies to exp too, so exp is checked again below, exactly.
	t, err := jwt.ParseWithClaims(raw, &ac, func(t *jwt.Token) (any, error) { return s.keys.verifyKey(ctx, t) },
		jwt.WithValidMethods([]string{s.keys.alg()}), jwt.WithIssuer(s.cfg.Issuer), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(maxClockSkew), jwt.WithTimeFunc(s.now))
	if errors.Is(err, errKeyStore) {
		return nil, err
	}
	if err != nil || ac.ExpiresAt == nil || !s.now().Before(ac.ExpiresAt.Time) {
		return nil, invalidToken("the access token is invalid or expired")
	}
	if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, invalidToken("the token is not an access token")
	}
	if ac.ID == "" || ac.Subject == "" || ac.ClientID == "" {
		return nil, invalidToken("the access token lacks jti, sub or client_id")
	}
	return &ac, nil
}

// Verify checks a bearer access token for resource ("" means any allowed
// resource): signature, issuer, lifetime, then its record in the store,
// then audience and the required scopes. The claims returned come from the
// record (the token's grant: agent, user, resource; the scopes it was
// issued for), never from the token alone: a token whose claims differ
// from its record is refused, so even the signing key cannot mint a token
// for another agent, user or scope. A revocation holds at once on every
// replica. Errors are *Error: invalid_token (401) or insufficient_scope
// (403); ErrNoToken for an empty token.
func (s *Server) Verify(ctx context.Context, raw, resource string, requiredScopes []string) (Claims, error) {
	if raw == "" {
		return Claims{}, ErrNoToken
	}
	c, err := s.accessToken(ctx, raw)
	if err != nil {
		return Claims{}, err
	}
	switch {
	case resource != "" && !contains(c.Audience, resource):
		return Claims{}, invalidToken("the access token is not for this resource")
	case resource == "" && len(s.cfg.AllowedResources) > 0 && !anyOf(c.Audience, s.cfg.AllowedResources):
		return Claims{}, invalidToken("the access token is not for a resource of this server")
	}
	if !subset(requiredScopes, c.Scopes) {
		return c, &Error{Code: CodeInsufficientScope, Description: "the access token lacks a required scope",
			Status: http.StatusForbidden, Scope: strings.Join(requiredScopes, " ")}
	}
	return c, nil
}

// accessToken checks an access token (parseAccessToken) and then its
// record: known, its claims those it was issued with, not revoked (nor its
// grant), not expired. The claims are the record's.
func (s *Server) accessToken(ctx context.Context, raw string) (Claims, error) {
	ac, err := s.parseAccessToken(ctx, raw)
	if err != nil {
		return Claims{}, err
	}
	rec, g, err := s.st.GetOAuthAccessToken(ctx, ac.ID)
	if errors.Is(err, store.ErrNotFound) {
		return Claims{}, invalidToken("the access token is unknown")
	}
	if err != nil {
		return Claims{}, fmt.Errorf("oauth: access token: %w", err)
	}
	switch {
	case !matchesRecord(ac, rec, g):
		return Claims{}, invalidToken("the access token's claims are not those it was issued with")
	case rec.RevokedAt != nil:
		return Claims{}, invalidToken("the access token is revoked")
	case !s.now().Before(rec.ExpiresAt):
		return Claims{}, invalidToken("the access token is invalid or expired")
	}
	c := Claims{AgentID: g.AgentID, Subject: g.UserID, ClientID: rec.ClientID, Scopes: slices.Clone(rec.Scopes),
		Audience: []string{g.Resource}, JTI: rec.JTI, ExpiresAt: rec.ExpiresAt}
	if ac.IssuedAt != nil {
		c.IssuedAt = ac.IssuedAt.Time
	}
	return c, nil
}

// matchesRecord reports whether a token says what was issued under its
// jti: the grant's user, agent, client and resource, the token's own
// scopes (in any order) and expiry.
func matchesRecord(ac *accessClaims, rec store.OAuthAccessToken, g store.OAuthGrant) bool {
	scopes := spaceList(ac.Scope)
	return ac.Subject == g.UserID && ac.Agent == g.AgentID && ac.ClientID == rec.ClientID && rec.ClientID == g.ClientID &&
		len(ac.Audience) == 1 && ac.Audience[0] == g.Resource &&
		len(scopes) == len(rec.Scopes) && subset(scopes, rec.Scopes) &&
		ac.ExpiresAt != nil && ac.ExpiresAt.Unix() == rec.ExpiresAt.Unix()
}

func anyOf(xs, of []string) bool {
	for _, x := range xs {
		if contains(of, x) {
			return true
		}
	}
	return false
}

// Challenge answers a request Verify refused: 401 with WWW-Authenticate
// Bearer resource_metadata (and error="invalid_token" when a token was
// presented), or 403 insufficient_scope with the scope needed. Internal
// faults are 500.
func (s *Server) Challenge(w http.ResponseWriter, resource string, err error) {
	if resource == "" && len(s.cfg.AllowedResources) == 1 {
		resource = s.cfg.AllowedResources[0]
	}
	params := []string{}
	if resource != "" {
		params = append(params, `resource_metadata="`+ResourceMetadataURL(resource)+`"`)
	}
	var oe *Error
	switch {
	case errors.Is(err, ErrNoToken):
		oe = &Error{Status: http.StatusUnauthorized}
	case errors.As(err, &oe) && (oe.Code == CodeInvalidToken || oe.Code == CodeInsufficientScope || oe.Code == CodeInvalidRequest):
		params = append(params, `error="`+oe.Code+`"`, `error_description="`+quoteSafe(oe.Description)+`"`)
		if oe.Scope != "" {
			params = append(params, `scope="`+quoteSafe(oe.Scope)+`"`)
		}
	default:
		s.log.Error("oauth bearer check failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": CodeServerError})
		return
	}
	w.Header().Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	w.Header().Set("Cache-Control", "no-store")
	if oe.Code == "" {
		w.WriteHeader(oe.Status)
		return
	}
	writeJSON(w, oe.Status, map[string]string{"error": oe.Code, "error_description": oe.Description})
}

// quoteSafe drops what cannot appear in a quoted-string here.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}

// BearerToken extracts the token of an "Authorization: Bearer" header:
// "" if there is none (or another scheme), an invalid_request error (400)
// if the Bearer header is malformed.
func BearerToken(r *http.Request) (string, error) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", nil
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", oauthErr(http.StatusBadRequest, CodeInvalidRequest, "the Authorization header is not a Bearer token")
	}
	return token, nil
}

type claimsKey struct{}

// ClaimsFrom returns the claims RequireToken put in the context.
func ClaimsFrom(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(Claims)
	return c, ok
}

// RequireToken is middleware admitting requests with a valid access token
// for resource carrying scopes; the claims are in the request context
// (ClaimsFrom). Others get Challenge's answer.
func (s *Server) RequireToken(resource string, scopes ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, err := BearerToken(r)
			if err == nil {
				// Verify answers ErrNoToken for "".
				var c Claims
				c, err = s.Verify(r.Context(), raw, resource, scopes)
				if err == nil {
					next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, c)))
					return
				}
			}
			s.Challenge(w, resource, err)
		})
	}
}
