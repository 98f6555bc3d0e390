package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/secret"
)

// Permission is a Kavach permission a scope grants.
type Permission = api.Permission

// Grant types and client authentication methods.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"

	AuthNone              = "none"
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"

	// ScopeOfflineAccess asks for a refresh token. It is always supported
	// and grants no permission.
	ScopeOfflineAccess = "offline_access"
)

// MinSecretLength is the shortest HS256 signing secret accepted.
const MinSecretLength = 32

// Defaults for the zero values of Config.
const (
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 7 * 24 * time.Hour
	DefaultCodeTTL         = 10 * time.Minute
	DefaultRequestTTL      = 10 * time.Minute
)

// Client is a pre-registered OAuth client. An empty Secret makes a public
// client (PKCE only); otherwise it authenticates with client_secret_basic
// or client_secret_post.
type Client struct {
	ID           string   `json:"clientId"`
	Secret       string   `json:"clientSecret,omitempty"`
	Name         string   `json:"name,omitempty"`
	RedirectURIs []string `json:"redirectUris"`
	// GrantTypes defaults to authorization_code and refresh_token.
	GrantTypes []string `json:"grantTypes,omitempty"`
	// Scopes, if any, are the only scopes the client may ask for, and
	// what it gets when it asks for none (KavachOS's client scope).
	Scopes []string `json:"scopes,omitempty"`
}

// Config is the authorization server's configuration (the seeds' mcp
// section).
type Config struct {
	// Issuer identifies the server; it is echoed byte for byte in metadata,
	// tokens and redirects. https, or http on a loopback host.
	Issuer string
	// BaseURL is where the endpoints are mounted; default Issuer.
	BaseURL string
	// SigningSecret selects HS256 with this secret (32+ characters);
	// empty means ES256 with a key pair kept in the store.
	SigningSecret string
	// Secret (New requires it) seals the ES256 private keys in the store;
	// PreviousSecret, the one before a rotation, only opens them: at start
	// every key is sealed anew under Secret.
	Secret         secret.Secret
	PreviousSecret secret.Secret
	// Token and code lifetimes; zero means the default.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	CodeTTL         time.Duration
	// RequestTTL bounds the time the human has to log in and consent.
	RequestTTL time.Duration
	// EnforceAuth tells the integrator to require tokens on MCP routes; the
	// server itself only reports it.
	EnforceAuth bool
	// Scopes maps each scope name to the permissions it grants.
	Scopes map[string][]Permission
	// AllowedResources lists the RFC 8707 resource URIs tokens may be for.
	AllowedResources []string
	// LoginPage and ConsentPage are where the browser is sent with
	// ?request=<handle>: LoginPage if set, else ConsentPage.
	LoginPage   string
	ConsentPage string
	// PreRegisteredClients need no dynamic registration.
	PreRegisteredClients []Client
	// AdditionalClaims are added to every access token (KavachOS's
	// getAdditionalClaims); they cannot replace a claim Kavach sets.
	AdditionalClaims map[string]any
	// ClaimsHook, if set, gives each access token further claims (the
	// app's, through mcp.claimsWebhook); an error fails the token request.
	ClaimsHook func(ctx context.Context, r ClaimsRequest) (map[string]any, error)
}

// ClaimsRequest is what ClaimsHook is told of the token being issued.
type ClaimsRequest struct {
	UserID   string   `json:"userId"`
	ClientID string   `json:"clientId"`
	AgentID  string   `json:"agentId"`
	Scopes   []string `json:"scopes"`
	Resource string   `json:"resource"`
}

// reservedClaims are the claims an access token carries of its own: the
// registered ones (RFC 7519, RFC 9068) and Kavach's. AdditionalClaims may
// not name them, so that no configuration can widen a token's audience,
// scope or life, or name another agent.
var reservedClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "kavach_agent",
	"auth_time", "acr", "amr", "cnf", "act", "may_act", "azp", "typ"}

// Validate reports the first configuration error.
func (c Config) Validate() error {
	iss, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		return errors.New("oauth: issuer is required")
	case err != nil:
		return fmt.Errorf("oauth: issuer: %w", err)
	case iss.Scheme == "http" && !isLoopbackHost(iss.Hostname()):
		return fmt.Errorf("oauth: issuer %q: http is allowed only on a loopback host; use https", c.Issuer)
	case iss.Scheme != "https" && iss.Scheme != "http":
		return fmt.Errorf("oauth: issuer %q must be an https URL", c.Issuer)
	case iss.Host == "" || iss.RawQuery != "" || iss.Fragment != "" || iss.User != nil:
		return fmt.Errorf("oauth: issuer %q must be an https URL with no query, fragment or user", c.Issuer)
	}
	if c.BaseURL != "" {
		b, err := url.Parse(c.BaseURL)
		if err != nil || b.Host == "" || (b.Scheme != "https" && (b.Scheme != "http" || !isLoopbackHost(b.Hostname()))) ||
			b.RawQuery != "" || b.Fragment != "" {
			return fmt.Errorf("oauth: baseUrl %q must be an https URL (http only on a loopback host) with no query or fragment", c.BaseURL)
		}
	}
	if c.SigningSecret != "" && len(c.SigningSecret) < MinSecretLength {
		return fmt.Errorf("oauth: signing secret is %d characters; at least %d are required", len(c.SigningSecret), MinSecretLength)
	}
	for name, d := range map[string]time.Duration{"accessTokenTtl": c.AccessTokenTTL, "refreshTokenTtl": c.RefreshTokenTTL,
		"codeTtl": c.CodeTTL, "requestTtl": c.RequestTTL} {
		if d < 0 {
			return fmt.Errorf("oauth: %s must not be negative", name)
		}
	}
	if c.LoginPage == "" && c.ConsentPage == "" {
		return errors.New("oauth: loginPage or consentPage is required")
	}
	for name, page := range map[string]string{"loginPage": c.LoginPage, "consentPage": c.ConsentPage} {
		if u, err := url.Parse(page); err != nil || u.Fragment != "" || (u.Host == "" && page != "" && !strings.HasPrefix(u.Path, "/")) {
			return fmt.Errorf("oauth: %s %q must be an absolute URL or an absolute path", name, page)
		}
	}
	for name := range c.Scopes {
		if !validScopeToken(name) {
			return fmt.Errorf("oauth: scope name %q is not a valid scope token", name)
		}
	}
	for _, r := range c.AllowedResources {
		if err := checkResource(r); err != nil {
			return fmt.Errorf("oauth: allowed resource: %w", err)
		}
	}
	seen := map[string]bool{}
	for _, cl := range c.PreRegisteredClients {
		if cl.ID == "" || seen[cl.ID] {
			return fmt.Errorf("oauth: pre-registered client ID %q is empty or repeated", cl.ID)
		}
		seen[cl.ID] = true
		if err := checkRedirectURIs(cl.RedirectURIs); err != nil {
			return fmt.Errorf("oauth: client %s: %w", cl.ID, err)
		}
		for _, g := range cl.GrantTypes {
			if g != GrantAuthorizationCode && g != GrantRefreshToken {
				return fmt.Errorf("oauth: client %s: unsupported grant type %q", cl.ID, g)
			}
		}
		for _, sc := range cl.Scopes {
			if !contains(c.scopesSupported(), sc) {
				return fmt.Errorf("oauth: client %s: scope %q is not among the configured scopes", cl.ID, sc)
			}
		}
	}
	return checkClaims(c.AdditionalClaims)
}

// claimName is what an additional claim may be called: ASCII letters,
// digits and _ . : -, so that no name folds (as JSON decoders fold field
// names, Unicode included: ſ for s, the Kelvin sign for k) into one of the
// reserved claims.
var claimName = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)

// checkClaims refuses additional claims that name, in any case, a claim
// the server sets, have a name outside claimName, or cannot be encoded.
func checkClaims(claims map[string]any) error {
	for name, v := range claims {
		if !claimName.MatchString(name) {
			return fmt.Errorf("oauth: additional claim %q: a claim name is 1 to 128 ASCII letters, digits, _ . : or -", name)
		}
		if slices.ContainsFunc(reservedClaims, func(r string) bool { return strings.EqualFold(r, name) }) {
			return fmt.Errorf("oauth: additional claim %q is one the server sets itself", name)
		}
		if _, err := json.Marshal(v); err != nil {
			return fmt.Errorf("oauth: additional claim %q: %w", name, err)
		}
	}
	return nil
}

// withDefaults fills the zero values.
func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = c.Issuer
	}
	c.BaseURL = strings.TrimSuffix(c.BaseURL, "/")
	if c.AccessTokenTTL == 0 {
		c.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if c.RefreshTokenTTL == 0 {
		c.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if c.CodeTTL == 0 {
		c.CodeTTL = DefaultCodeTTL
	}
	if c.RequestTTL == 0 {
		c.RequestTTL = DefaultRequestTTL
	}
	return c
}

// scopesSupported lists the configured scopes and offline_access, sorted.
func (c Config) scopesSupported() []string {
	out := []string{ScopeOfflineAccess}
	for name := range c.Scopes {
		if name != ScopeOfflineAccess {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// isLoopbackHost reports whether host (without port or brackets) is
// localhost or a loopback IP literal.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkResource accepts an absolute URI with no fragment (RFC 8707 §2).
func checkResource(r string) error {
	u, err := url.Parse(r)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || strings.Contains(r, "#") {
		return fmt.Errorf("resource %q must be an absolute URI with no fragment", r)
	}
	return nil
}

// validScopeToken: 1*( %x21 / %x23-5B / %x5D-7E ) (RFC 6749 §3.3).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}
