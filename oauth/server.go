// Package oauth is Kavach's OAuth 2.1 authorization server for MCP: it
// exists so that MCP clients obtain access tokens that resolve to Kavach
// agents (one delegated agent per client and user), and so get the same
// Rego decisions, constraints and audit rows as any other agent. It serves
// metadata (RFC 8414, RFC 9728), dynamic client registration (RFC 7591),
// the authorization and token endpoints with PKCE and resource indicators
// (RFC 7636, RFC 8707), JWT access tokens (RFC 9068), revocation
// (RFC 7009) and introspection (RFC 7662), and checks bearer tokens for
// resource servers. Human login stays in the app, which approves or denies
// each pending request through the admin API.
//
// Each flow lives in its own file with the storage it needs, as in
// ory/fosite.
package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/store"
)

// Agents turns a (client, user) grant into a Kavach agent: a delegated
// agent owned by userID that holds perms (created, or given them if the
// pair has one). The service layer implements it.
type Agents interface {
	GrantAgent(ctx context.Context, clientID, clientName, userID string, perms []Permission) (agentID string, err error)
}

// Storage is everything the server keeps; *store.Store implements it. Each
// flow declares the part it uses.
type Storage interface {
	clientStorage
	requestStorage
	tokenStorage
	keyStorage
	PurgeOAuth(ctx context.Context, before time.Time) error
}

var _ Storage = (*store.Store)(nil)

// Options are the server's collaborators.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger hears internal faults; nil discards.
	Logger *slog.Logger
}

// Server is the authorization server. It keeps no state of its own but
// caches (signing keys): every replica sharing the store answers alike.
type Server struct {
	cfg     Config
	st      Storage
	agents  Agents
	now     func() time.Time
	log     *slog.Logger
	clients map[string]store.OAuthClient // pre-registered, by ID
	keys    *keyring
	// basePath is BaseURL's path ("" or "/x"), where endpoints are mounted.
	basePath string
}

// New validates cfg and returns a server. With ES256 it makes sure a
// signing key exists in the store, generating one on first start. It
// seals under cfg.Secret every signing key stored in plaintext or under
// cfg.PreviousSecret, and fails (ErrKeyUnreadable) on a key neither opens.
func New(ctx context.Context, cfg Config, st Storage, agents Agents, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil || agents == nil {
		return nil, fmt.Errorf("oauth: storage and agents are required")
	}
	if !cfg.Secret.Set() {
		return nil, errors.New("oauth: a secret is required: it seals the signing keys kept in the database")
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, st: st, agents: agents, now: opts.Now, log: opts.Logger, clients: map[string]store.OAuthClient{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("oauth: baseUrl: %w", err)
	}
	s.basePath = strings.TrimSuffix(base.EscapedPath(), "/")
	for _, c := range cfg.PreRegisteredClients {
		oc := store.OAuthClient{ID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes, AuthMethod: AuthNone,
			Scopes: c.Scopes}
		if len(oc.GrantTypes) == 0 {
			oc.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
		}
		if c.Secret != "" {
			oc.SecretHash, oc.AuthMethod = hash(c.Secret), AuthClientSecretBasic
		}
		s.clients[c.ID] = oc
	}
	s.keys, err = newKeyring(ctx, st, cfg, s.now)
	if err != nil {
		return nil, err
	}
	// Also with HS256: ES256 keys of an earlier configuration are sealed too.
	n, err := s.keys.reseal(ctx)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		s.log.Info("oauth signing keys sealed under the current secret", "keys", n, "secretKeyId", s.keys.currentKeyID())
	}
	return s, nil
}

// Purge deletes expired requests, codes and tokens, and grants left with
// none. Call it now and then (an hourly janitor is plenty); any replica may.
func (s *Server) Purge(ctx context.Context) error {
	if err := s.st.PurgeOAuth(ctx, s.now()); err != nil {
		return fmt.Errorf("oauth: purge: %w", err)
	}
	return nil
}

// Config returns the configuration in effect, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Handler serves the public endpoints: metadata, registration, authorize,
// token, revocation, introspection and JWKS. Mount it at the root of the
// host: it routes on full paths (BaseURL's path included).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Register(mux)
	return mux
}

// Route is one public endpoint: Name is how Kavach's API policy knows it
// (oauth.token, …), Pattern the ServeMux pattern, whose path depends on
// the issuer and base URL.
type Route struct {
	Name    string
	Pattern string
	Handler http.HandlerFunc
}

// Routes are the public endpoints: metadata, registration, authorize,
// token, revocation, introspection and JWKS.
func (s *Server) Routes() []Route {
	var rs []Route
	for _, p := range s.metadataPaths() {
		rs = append(rs, Route{"oauth.metadata", "GET " + p, s.serveMetadata})
	}
	for _, p := range s.resourceMetadataPaths() {
		rs = append(rs, Route{"oauth.resource_metadata", "GET " + p, s.serveResourceMetadata})
	}
	b := s.basePath
	return append(rs,
		Route{"oauth.register", "POST " + b + "/oauth/register", s.serveRegister},
		Route{"oauth.authorize", "GET " + b + "/oauth/authorize", s.serveAuthorize},
		Route{"oauth.token", "POST " + b + "/oauth/token", s.serveToken},
		Route{"oauth.revoke", "POST " + b + "/oauth/revoke", s.serveRevoke},
		Route{"oauth.introspect", "POST " + b + "/oauth/introspect", s.serveIntrospect},
		Route{"oauth.jwks", "GET " + b + "/oauth/jwks", s.serveJWKS},
	)
}

// Register adds the public endpoints to mux.
func (s *Server) Register(mux *http.ServeMux) {
	for _, r := range s.Routes() {
		mux.HandleFunc(r.Pattern, r.Handler)
	}
}

func (s *Server) endpoint(name string) string { return s.cfg.BaseURL + "/oauth/" + name }

// randomToken returns 256 random bits, base64url without padding.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// hash is the SHA-256 hex of a high-entropy secret: what the store keeps.
func hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// spaceList splits a space-separated parameter (scope), dropping repeats.
func spaceList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, " ") {
		if f != "" && !contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func subset(sub, of []string) bool {
	for _, x := range sub {
		if !contains(of, x) {
			return false
		}
	}
	return true
}
