package credentials

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/oauth"
)

// AccessTokens verifies MCP OAuth access tokens; *oauth.Server does.
type AccessTokens interface {
	Verify(ctx context.Context, raw, resource string, requiredScopes []string) (oauth.Claims, error)
}

// UseAccessTokens lets POST /v1/authorize take MCP OAuth access tokens as
// bearers, deciding as the grant's agent limited to the permissions of the
// token's scopes (scopes: each scope's permissions, as configured). Call it
// before serving.
func (s *Credentials) UseAccessTokens(v AccessTokens, scopes map[string][]api.Permission) {
	s.tokens = v
	s.scopeKeys = map[string][]string{}
	for name, perms := range scopes {
		for _, p := range perms {
			s.scopeKeys[name] = append(s.scopeKeys[name], engine.PermissionKey(p.Resource, p.Actions))
		}
	}
}

// keysOf lists the permission keys a token's scopes grant: never nil, so
// a token whose scopes grant nothing is limited to nothing.
func (s *Credentials) keysOf(scopes []string) []string {
	keys := []string{}
	for _, sc := range scopes {
		for _, k := range s.scopeKeys[sc] {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// AgentOfAccessToken verifies an MCP access token and returns its grant's
// agent and the permission keys its scopes grant. A bad, expired or
// revoked token is unauthorized (401), at once on every replica:
// revocation is checked in the database.
func (s *Credentials) AgentOfAccessToken(ctx context.Context, bearer string) (string, []string, error) {
	if s.tokens == nil {
		return "", nil, &apperr.Error{Kind: apperr.Unauthorized, Code: "malformed_token",
			Message: "the bearer token is not a Kavach agent token, and the MCP authorization server (mcp.enabled) is off"}
	}
	c, err := s.tokens.Verify(ctx, bearer, "", nil)
	var oe *oauth.Error
	switch {
	case errors.As(err, &oe):
		return "", nil, &apperr.Error{Kind: apperr.Unauthorized, Code: "invalid_token", Message: oe.Description, Err: err}
	case err != nil:
		return "", nil, fmt.Errorf("verify access token: %w", err)
	case c.AgentID == "":
		return "", nil, &apperr.Error{Kind: apperr.Unauthorized, Code: "invalid_token", Message: "the access token names no agent"}
	}
	return c.AgentID, s.keysOf(c.Scopes), nil
}
