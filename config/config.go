// Package config reads Kavach's YAML configuration, which mirrors the
// seeds' createKavach options (database, agents), and checks it at startup
// so a bad value fails loudly instead of changing behaviour silently.
package config

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/oauth"
	"github.com/kavach-dev/kavach/secret"
)

// Config is the whole file. Zero values mean defaults.
type Config struct {
	// Secret (the seeds' top-level secret, 32+ characters) keys what
	// Kavach signs and encrypts: audit checkpoints, private keys at rest.
	// KAVACH_SECRET overrides it, to keep it out of the file.
	Secret string `yaml:"secret"`
	// PreviousSecret is the secret before a rotation
	// (KAVACH_SECRET_PREVIOUS): still accepted to verify and decrypt what
	// it keyed, never used to sign or encrypt anew.
	PreviousSecret string   `yaml:"previousSecret"`
	Server         Server   `yaml:"server"`
	Database       Database `yaml:"database"`
	Agents         Agents   `yaml:"agents"`
	Approval       Approval `yaml:"approval"`
	Policies       Policies `yaml:"policies"`
	Audit          Audit    `yaml:"audit"`
	Log            Log      `yaml:"log"`
	MCP            MCP      `yaml:"mcp"`
	Anomaly        Anomaly  `yaml:"anomaly"`
	Trust          Trust    `yaml:"trust"`
	// Webhooks receive events, signed (Standard Webhooks).
	Webhooks []Webhook `yaml:"webhooks"`
	Events   Events    `yaml:"events"`

	// Telemetry is OpenTelemetry tracing (telemetry.go).
	Telemetry Telemetry `yaml:"telemetry"`
}

// MCP configures the OAuth 2.1 authorization server for MCP clients: the
// seeds' mcp section. Its TTLs are durations; a plain number counts
// seconds, as in the seeds (3600, or 1h).
type MCP struct {
	Enabled bool `yaml:"enabled"`
	// Issuer is echoed byte for byte in metadata, tokens and redirects:
	// https, or http on a loopback host (development).
	Issuer string `yaml:"issuer"`
	// BaseURL is where the OAuth endpoints are served; default Issuer.
	BaseURL string `yaml:"baseUrl"`
	// SigningSecret (32+ characters) selects HS256; without it tokens are
	// ES256-signed with a key pair generated and kept in the database.
	// KAVACH_MCP_SIGNING_SECRET overrides it, to keep it out of the file.
	SigningSecret   string   `yaml:"signingSecret"`
	AccessTokenTTL  Duration `yaml:"accessTokenTtl"`
	RefreshTokenTTL Duration `yaml:"refreshTokenTtl"`
	CodeTTL         Duration `yaml:"codeTtl"`
	// EnforceAuth makes POST /v1/oauth/verify refuse requests without a
	// token (401 with a challenge) instead of reporting them anonymous.
	EnforceAuth bool `yaml:"enforceAuth"`
	// Scopes maps each scope to the Kavach permissions it grants; or, in
	// KavachOS's form, lists the scope names, and ScopePermissions gives
	// each its permissions (a scope it leaves out grants none: tokens carry
	// it for the MCP server's own checks).
	Scopes           ScopeMap                    `yaml:"scopes"`
	ScopePermissions map[string][]api.Permission `yaml:"scopePermissions"`
	// AdditionalClaims are added to every access token, as KavachOS's
	// getAdditionalClaims adds its result; a registered claim (iss, sub,
	// aud, exp, scope, client_id, …) cannot be replaced.
	AdditionalClaims map[string]any `yaml:"additionalClaims"`
	// ClaimsWebhook asks the app for each token's claims (KavachOS's
	// getAdditionalClaims with the user and scopes), after the static ones.
	ClaimsWebhook *ClaimsWebhook `yaml:"claimsWebhook"`
	// AllowedResources are the RFC 8707 resource URIs (MCP servers)
	// tokens may be issued for.
	AllowedResources     []string    `yaml:"allowedResources"`
	LoginPage            string      `yaml:"loginPage"`
	ConsentPage          string      `yaml:"consentPage"`
	PreRegisteredClients []MCPClient `yaml:"preRegisteredClients"`
}

// MCPClient is an OAuth client registered at startup. It takes KavachOS's
// field names too: clientName for name, and scope, the space-separated
// scopes the client may ask for.
type MCPClient struct {
	ClientID string `yaml:"clientId"`
	// ClientSecret makes a confidential client; none is a public one (PKCE).
	ClientSecret string   `yaml:"clientSecret"`
	Name         string   `yaml:"name"`
	ClientName   string   `yaml:"clientName"`
	RedirectURIs []string `yaml:"redirectUris"`
	GrantTypes   []string `yaml:"grantTypes"`
	// Scope limits the client to these scopes (space-separated) and is
	// what it gets when it asks for none; empty, every scope.
	Scope string `yaml:"scope"`
}

// ClaimsWebhook is mcp.claimsWebhook: a POST signed as webhooks are
// (Standard Webhooks) for each access token issued, whose answer, a JSON
// object, is added to the token's claims.
type ClaimsWebhook struct {
	URL string `yaml:"url"`
	// Secret (whsec_…) or SecretEnv signs each request; one is required.
	Secret    string `yaml:"secret"`
	SecretEnv string `yaml:"secretEnv"`
	// Timeout bounds each request (default 2s): the token request waits
	// for it, and fails if it fails.
	Timeout Duration `yaml:"timeout"`
}

var claimsTimeoutRule = Rule{Name: "mcp.claimsWebhook.timeout", Min: 10 * time.Millisecond, Max: 30 * time.Second,
	Step: time.Millisecond, Examples: "500ms, 2s", Unset: "the default, 2s"}

// DefaultClaimsTimeout bounds a claims webhook request by default.
const DefaultClaimsTimeout = 2 * time.Second

// loopbackHost reports whether host (no port, no brackets) is localhost or
// a loopback IP literal.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ClaimsKey is the claims webhook's signing key and timeout; call after
// Validate (ok false when there is no claims webhook).
func (m MCP) ClaimsKey() (key []byte, timeout time.Duration, ok bool) {
	w := m.ClaimsWebhook
	if w == nil {
		return nil, 0, false
	}
	key, _ = secretOf("mcp.claimsWebhook", "secret", w.Secret, w.SecretEnv)
	timeout, _ = claimsTimeoutRule.Parse(string(w.Timeout))
	return key, cmp.Or(timeout, DefaultClaimsTimeout), true
}

func (m MCP) validateClaimsWebhook() error {
	w := m.ClaimsWebhook
	if w == nil {
		return nil
	}
	if !validHTTPURL(w.URL) {
		return errors.New("mcp.claimsWebhook.url must be an http(s) URL without user:password or #fragment")
	}
	// Its answer goes into tokens unsigned: only TLS, or the loopback
	// interface, keeps others on the path from adding claims.
	if u, _ := url.Parse(w.URL); u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return errors.New("mcp.claimsWebhook.url must be https (http only on localhost or a loopback address): its answer becomes claims of every token")
	}
	key, err := secretOf("mcp.claimsWebhook", "secret", w.Secret, w.SecretEnv)
	if err != nil {
		return err
	}
	if key == nil {
		return errors.New("mcp.claimsWebhook: a secret is required (secret: whsec_…, or secretEnv naming a variable that holds it): the app verifies each request with it")
	}
	_, err = claimsTimeoutRule.Parse(string(w.Timeout))
	return err
}

// ScopeMap is mcp.scopes: a mapping of each scope to its permissions, or
// KavachOS's list of scope names (each then grants what
// mcp.scopePermissions gives it, or nothing).
type ScopeMap map[string][]api.Permission

// UnmarshalYAML reads either form; a name listed twice is an error.
func (m *ScopeMap) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		var grants map[string][]api.Permission
		if err := n.Decode(&grants); err != nil {
			return err
		}
		*m = grants
		return nil
	}
	var names []string
	if err := n.Decode(&names); err != nil {
		return err
	}
	out := make(ScopeMap, len(names))
	for _, name := range names {
		if _, dup := out[name]; dup {
			return fmt.Errorf("line %d: mcp.scopes lists %q twice", n.Line, name)
		}
		out[name] = []api.Permission{}
	}
	*m = out
	return nil
}

// The rules of the mcp TTLs: seconds, as in the seeds, up to a year.
var (
	accessTokenTTLRule = Rule{Name: "mcp.accessTokenTtl", Plain: time.Second, Min: time.Second, Max: 366 * Day, Step: time.Second,
		Unset: "the default, " + FormatDuration(oauth.DefaultAccessTokenTTL)}
	refreshTokenTTLRule = Rule{Name: "mcp.refreshTokenTtl", Plain: time.Second, Min: time.Second, Max: 366 * Day, Step: time.Second,
		Unset: "the default, " + FormatDuration(oauth.DefaultRefreshTokenTTL)}
	codeTTLRule = Rule{Name: "mcp.codeTtl", Plain: time.Second, Min: time.Second, Max: 366 * Day, Step: time.Second,
		Unset: "the default, " + FormatDuration(oauth.DefaultCodeTTL)}
)

// OAuth is the authorization server configuration the mcp section gives;
// call after Validate (an unset TTL is 0: oauth's default).
func (m MCP) OAuth() oauth.Config {
	access, _ := accessTokenTTLRule.Parse(string(m.AccessTokenTTL))
	refresh, _ := refreshTokenTTLRule.Parse(string(m.RefreshTokenTTL))
	code, _ := codeTTLRule.Parse(string(m.CodeTTL))
	c := oauth.Config{
		Issuer: m.Issuer, BaseURL: m.BaseURL, SigningSecret: m.SigningSecret,
		AccessTokenTTL: access, RefreshTokenTTL: refresh, CodeTTL: code,
		EnforceAuth: m.EnforceAuth, Scopes: m.Scopes, AllowedResources: m.AllowedResources,
		LoginPage: m.LoginPage, ConsentPage: m.ConsentPage, AdditionalClaims: m.AdditionalClaims,
	}
	for _, cl := range m.PreRegisteredClients {
		c.PreRegisteredClients = append(c.PreRegisteredClients, oauth.Client{ID: cl.ClientID, Secret: cl.ClientSecret,
			Name: cmp.Or(cl.Name, cl.ClientName), RedirectURIs: cl.RedirectURIs, GrantTypes: cl.GrantTypes,
			Scopes: strings.Fields(cl.Scope)})
	}
	return c
}

// Audit configures the audit writer.
type Audit struct {
	// Mode is "sync" (default: a decision is answered after its audit row
	// commits) or "async" (answered at once; a crash loses queued rows).
	Mode string `yaml:"mode"`
	// RetentionDays deletes audit rows older than this, through purges
	// that leave a signed checkpoint (kavach audit verify still passes): a
	// duration, where a plain number counts days (30, or 90d, 12w); 0, the
	// default, keeps every row.
	RetentionDays Duration `yaml:"retentionDays"`
}

var retentionRule = Rule{Name: "audit.retentionDays", Plain: Day, Min: Day, Max: 36500 * Day, Step: time.Second,
	Examples: "90d, 12w, 36h", Zero: "keeps every row (the default)"}

// Retention is audit.retentionDays as a duration, 0 to keep every row;
// call after Validate.
func (c Config) Retention() time.Duration {
	d, _ := retentionRule.Parse(string(c.Audit.RetentionDays))
	return d
}

// Policies configures user policy extensions.
type Policies struct {
	// Extensions is a directory of .rego files or an OPA bundle file, in
	// package kavach.ext; reloaded when it changes.
	Extensions string `yaml:"extensions"`
	// CachedAgents is how many agents' policy data each replica keeps in
	// memory, least recently used out (default 50,000; with five
	// permissions an agent takes about 0.9 KB when agents share permission
	// sets, 6 KB when each has its own): the others are read from the
	// database when a decision needs them. Memory stays bounded however
	// many agents exist, and start-up reads none.
	CachedAgents int `yaml:"cachedAgents"`
	// LoadAll loads every agent into memory at start-up instead (OPA's
	// in-memory store): no decision ever waits for the database, but
	// memory and start-up time grow with the number of agents.
	LoadAll bool `yaml:"loadAll"`
}

// DefaultCachedAgents is policies.cachedAgents' default.
const DefaultCachedAgents = 50_000

// MaxCachedAgents bounds policies.cachedAgents.
const MaxCachedAgents = 10_000_000

// CachedAgents is policies.cachedAgents, or its default.
func (c Config) CachedAgents() int {
	if c.Policies.CachedAgents == 0 {
		return DefaultCachedAgents
	}
	return c.Policies.CachedAgents
}

// Approval configures human approval requests.
type Approval struct {
	// TTL is how long a request stays open, and usable once approved: a
	// duration, where a plain number counts seconds (the seeds' unit: 300,
	// or 5m); default 5m.
	TTL        Duration `yaml:"ttl"`
	WebhookURL string   `yaml:"webhookUrl"`
}

var approvalTTLRule = Rule{Name: "approval.ttl", Plain: time.Second, Min: time.Second, Max: 7 * Day, Step: time.Second,
	Unset: "the default, 5m"}

// ApprovalTTL is approval.ttl, 0 when unset (the service's default); call
// after Validate.
func (c Config) ApprovalTTL() time.Duration {
	d, _ := approvalTTLRule.Parse(string(c.Approval.TTL))
	return d
}

// Server configures the listeners.
type Server struct {
	Address      string `yaml:"address"`
	MaxBodyBytes *int64 `yaml:"maxBodyBytes"`
	// PublicAddress, if set, is a second listener serving only the OAuth
	// endpoints MCP clients and browsers must reach (metadata, register,
	// authorize, token, revoke, introspect, JWKS), never the admin API.
	PublicAddress string `yaml:"publicAddress"`
	// PublicURL is the base URL humans reach the pages at (approval links,
	// the dashboard), e.g. https://kavach.example.com; unset, the address
	// the pages' listener binds.
	PublicURL string `yaml:"publicUrl"`
	// DiagnosticAddress, if set, is a TCP listener serving only /health,
	// /ready and /metrics, without a credential: for the kubelet's probes
	// and Prometheus when the API is on loopback or a Unix socket.
	DiagnosticAddress string `yaml:"diagnosticAddress"`
	// TLSCert and TLSKey (PEM files) make the public listener, or the main
	// one when there is no public listener, serve HTTPS.
	TLSCert string `yaml:"tlsCert"`
	TLSKey  string `yaml:"tlsKey"`
	// AllowedHosts are host names a request's Host header may carry on a
	// TCP listener, besides localhost and IP addresses (DNS rebinding).
	AllowedHosts []string `yaml:"allowedHosts"`
	// SocketGroup is the group (name or ID) of the Unix socket when
	// address is unix:///path: the app's supplemental group.
	SocketGroup string `yaml:"socketGroup"`
	// AdminKeyFile is where the first start writes the bootstrap admin key
	// (mode 0600), and where the CLI looks for it; default
	// ~/.config/kavach/admin-key.
	AdminKeyFile string `yaml:"adminKeyFile"`
}

// Database selects the store.
type Database struct {
	Provider       string `yaml:"provider"`
	URL            string `yaml:"url"`
	SkipMigrations bool   `yaml:"skipMigrations"`
	// MaxConns caps PostgreSQL or MySQL connections per sidecar (default 16).
	MaxConns int `yaml:"maxConns"`
	// ApplicationName names this sidecar's PostgreSQL connections in
	// pg_stat_activity (default "kavach").
	ApplicationName string `yaml:"applicationName"`
	// PollInterval bounds how long another replica's write can take to
	// arrive when no notification does (default 1s, from 10ms to 1m), e.g.
	// "500ms": a duration with a unit. On MySQL, where nothing notifies,
	// it is the lag itself (default 200ms).
	PollInterval Duration `yaml:"pollInterval"`
	// Timeout bounds every database call (default 5s, from 100ms to 1m):
	// past it, a decision is 503 audit_unavailable. SQLite waits half as
	// long for a lock another process holds. A duration with a unit.
	Timeout Duration `yaml:"timeout"`
}

// Bounds of database.timeout.
const (
	DefaultDatabaseTimeout = 5 * time.Second
	MinDatabaseTimeout     = 100 * time.Millisecond
	MaxDatabaseTimeout     = time.Minute
)

// The rules of the database durations: Go's, with a unit (a plain number
// was never taken here, and could be read as milliseconds).
var (
	timeoutRule = Rule{Name: "database.timeout (--database-timeout, KAVACH_DATABASE_TIMEOUT)", Min: MinDatabaseTimeout,
		Max: MaxDatabaseTimeout, Step: time.Millisecond, Examples: "500ms, 5s, 1m", Unset: "the default, 5s"}
	pollIntervalRule = Rule{Name: "database.pollInterval", Min: 10 * time.Millisecond, Max: time.Minute, Step: time.Millisecond,
		Examples: "500ms, 1s, 10s", Unset: "the default, 1s"}
)

// DatabaseTimeout is database.timeout as a duration (the default when
// unset); call after Validate.
func (c Config) DatabaseTimeout() time.Duration {
	d, err := timeoutRule.Parse(string(c.Database.Timeout))
	if err != nil || d <= 0 {
		return DefaultDatabaseTimeout
	}
	return d
}

// PollInterval is database.pollInterval; unset, DefaultMySQLPollInterval
// on MySQL, else 0 (the service's default); call after Validate.
func (c Config) PollInterval() time.Duration {
	d, _ := pollIntervalRule.Parse(string(c.Database.PollInterval))
	if d == 0 && c.Database.Provider == "mysql" {
		return DefaultMySQLPollInterval
	}
	return d
}

// DefaultMySQLPollInterval is database.pollInterval's default on MySQL,
// which has no LISTEN: polling is how replicas hear of each other's
// writes, so it bounds their lag (a feed read of no rows costs one
// indexed lookup).
const DefaultMySQLPollInterval = 200 * time.Millisecond

// Agents configures the agent lifecycle.
type Agents struct {
	Enabled            *bool            `yaml:"enabled"`
	MaxPerUser         *int             `yaml:"maxPerUser"`
	DefaultPermissions []api.Permission `yaml:"defaultPermissions"`
	AuditAll           *bool            `yaml:"auditAll"`
	// TokenExpiry is the default lifetime of a new agent, a duration with
	// a unit as in the seeds (30m, 24h, 7d); unset, none.
	TokenExpiry Duration `yaml:"tokenExpiry"`
	// MaxMetadataBytes caps an agent's metadata, as JSON; 0 means
	// DefaultMaxMetadataBytes.
	MaxMetadataBytes int `yaml:"maxMetadataBytes"`
}

// Log configures logging.
type Log struct {
	Level string `yaml:"level"`
}

// Defaults.
const (
	DefaultAddress    = "127.0.0.1:7400"
	DefaultDatabase   = "./kavach.db"
	DefaultMaxPerUser = 10
	// DefaultMaxMetadataBytes bounds an agent's metadata (JSON bytes), so
	// that a list of agents stays small.
	DefaultMaxMetadataBytes = 16 << 10
)

// Default returns the configuration used when no file is given.
func Default() Config {
	return Config{
		Server: Server{Address: DefaultAddress},
		// Provider and URL are filled in by Validate: the provider follows
		// the URL unless the file names one.
		Log: Log{Level: "info"},
	}
}

// Load reads a YAML file over the defaults. Unknown keys are errors.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: the config file the operator named
	if err != nil {
		return Default(), fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse reads a YAML document over the defaults. Unknown keys are errors;
// an empty document is the defaults.
func Parse(b []byte) (Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, keyErrors(b, err)
	}
	return c, nil
}

// Validate checks every value and fills in defaults.
func (c *Config) Validate() error {
	for name, v := range map[string]string{"secret (KAVACH_SECRET)": c.Secret, "previousSecret (KAVACH_SECRET_PREVIOUS)": c.PreviousSecret} {
		if _, err := secret.New(v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if c.PreviousSecret != "" && c.Secret == "" {
		return errors.New("previousSecret (KAVACH_SECRET_PREVIOUS) is set but secret (KAVACH_SECRET) is not: the previous secret only verifies; give the new one")
	}
	if c.Server.Address == "" {
		c.Server.Address = DefaultAddress
	}
	if p, ok := strings.CutPrefix(c.Server.Address, "unix://"); ok && !strings.HasPrefix(p, "/") {
		return fmt.Errorf("server.address %q: a Unix socket needs an absolute path, as in unix:///var/run/kavach/kavach.sock", c.Server.Address)
	}
	if c.Server.SocketGroup != "" && !strings.HasPrefix(c.Server.Address, "unix://") {
		return fmt.Errorf("server.socketGroup is set but server.address %q is not a unix:// socket", c.Server.Address)
	}
	if m := c.Server.MaxBodyBytes; m != nil && (*m < 1024 || *m > 64<<20) {
		return fmt.Errorf("server.maxBodyBytes must be from 1024 to 67108864 bytes (leave it out for the default, 1048576), not %d", *m)
	}
	if c.Server.PublicURL != "" {
		if err := CheckPublicURL(c.Server.PublicURL); err != nil {
			return fmt.Errorf("server.publicUrl (--public-url, KAVACH_PUBLIC_URL): %w", err)
		}
	}
	if err := c.Server.checkDiagnosticAddress(); err != nil {
		return err
	}
	for _, h := range c.Server.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ *,") {
			return fmt.Errorf("server.allowedHosts: %q is not a host name", h)
		}
	}
	if c.Database.URL == "" && c.Database.Provider != "postgres" && c.Database.Provider != "mysql" {
		c.Database.URL = DefaultDatabase
	}
	if err := checkDatabaseURL(c.Database.URL); err != nil {
		return err
	}
	// The provider the URL names: "sqlite" for a file path.
	urlProvider := "sqlite"
	switch {
	case strings.HasPrefix(c.Database.URL, "postgres://") || strings.HasPrefix(c.Database.URL, "postgresql://"):
		urlProvider = "postgres"
	case isMySQLURL(c.Database.URL):
		urlProvider = "mysql"
	}
	switch c.Database.Provider {
	case "":
		// Inferred from the URL, so that --database postgres://… (or
		// mysql://…) just works.
		c.Database.Provider = urlProvider
	case "sqlite":
		if urlProvider != "sqlite" {
			return fmt.Errorf("database.provider is sqlite but database.url is a %s URL", urlProvider)
		}
	case "postgres", "mysql":
		if urlProvider != c.Database.Provider {
			return fmt.Errorf("database.provider %s needs database.url %s", c.Database.Provider, exampleURL(c.Database.Provider))
		}
	default:
		return fmt.Errorf("database.provider %q is not one of sqlite, postgres, mysql", c.Database.Provider)
	}
	if c.Database.MaxConns < 0 {
		return fmt.Errorf("database.maxConns must be positive, not %d", c.Database.MaxConns)
	}
	if n := c.Policies.CachedAgents; n < 0 || n > MaxCachedAgents {
		return fmt.Errorf("policies.cachedAgents must be from 1 to %d (0: the default, %d), not %d", MaxCachedAgents, DefaultCachedAgents, n)
	}
	if c.Policies.LoadAll && c.Policies.CachedAgents != 0 {
		return errors.New("policies.loadAll and policies.cachedAgents are both set: loadAll keeps every agent in memory, cachedAgents bounds how many; give one")
	}
	if _, err := pollIntervalRule.Parse(string(c.Database.PollInterval)); err != nil {
		return err
	}
	if _, err := timeoutRule.Parse(string(c.Database.Timeout)); err != nil {
		return err
	}
	if c.Agents.Enabled != nil && !*c.Agents.Enabled {
		return errors.New("agents.enabled: false is not supported: agents are the sidecar's purpose")
	}
	if c.Agents.AuditAll != nil && !*c.Agents.AuditAll {
		return errors.New("agents.auditAll: false is not supported: every decision is audited")
	}
	if c.Agents.MaxPerUser != nil && *c.Agents.MaxPerUser < 0 {
		return fmt.Errorf("agents.maxPerUser must be 0 (no cap) or more, not %d", *c.Agents.MaxPerUser)
	}
	if m := c.Agents.MaxMetadataBytes; m < 0 || m > 1<<20 {
		return fmt.Errorf("agents.maxMetadataBytes must be from 1 to 1048576 bytes (0: the default, %d), not %d", DefaultMaxMetadataBytes, m)
	}
	if _, err := tokenExpiryRule.Parse(string(c.Agents.TokenExpiry)); err != nil {
		return err
	}
	// YAML decodes numbers as int, JSON (the API) as float64: normalise the
	// default permissions through JSON so both validate and store alike.
	if c.Agents.DefaultPermissions != nil {
		b, err := json.Marshal(c.Agents.DefaultPermissions)
		if err != nil {
			return fmt.Errorf("agents.defaultPermissions: %w", err)
		}
		var perms []api.Permission
		if err := json.Unmarshal(b, &perms); err != nil {
			return fmt.Errorf("agents.defaultPermissions: %w", err)
		}
		c.Agents.DefaultPermissions = perms
	}
	if _, err := approvalTTLRule.Parse(string(c.Approval.TTL)); err != nil {
		return err
	}
	if u := c.Approval.WebhookURL; u != "" && !validHTTPURL(u) {
		// Not quoted: the URL may hold the receiver's token.
		return errors.New("approval.webhookUrl must be an http(s) URL without user:password or #fragment")
	}
	switch c.Audit.Mode {
	case "", "sync", "async":
	default:
		return fmt.Errorf("audit.mode %q is not one of sync, async", c.Audit.Mode)
	}
	if _, err := retentionRule.Parse(string(c.Audit.RetentionDays)); err != nil {
		return err
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		return errors.New("server.tlsCert and server.tlsKey go together: give both or neither")
	}
	if c.MCP.Enabled {
		if err := c.validateMCP(); err != nil {
			return err
		}
	}
	if err := c.validateWebhooks(); err != nil {
		return err
	}
	if err := c.validateAnomaly(); err != nil {
		return err
	}
	if err := c.validateTelemetry(); err != nil {
		return err
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level %q is not one of debug, info, warn, error", c.Log.Level)
	}
	return nil
}

func (c *Config) validateMCP() error {
	m := &c.MCP
	for _, k := range []struct {
		rule Rule
		v    Duration
	}{{accessTokenTTLRule, m.AccessTokenTTL}, {refreshTokenTTLRule, m.RefreshTokenTTL}, {codeTTLRule, m.CodeTTL}} {
		if _, err := k.rule.Parse(string(k.v)); err != nil {
			return err
		}
	}
	if err := m.mergeScopePermissions(); err != nil {
		return err
	}
	if err := m.validateClaimsWebhook(); err != nil {
		return err
	}
	for i, cl := range m.PreRegisteredClients {
		if cl.Name != "" && cl.ClientName != "" && cl.Name != cl.ClientName {
			return fmt.Errorf("mcp.preRegisteredClients[%d]: name and clientName differ; give one", i)
		}
	}
	// Through JSON, as for defaultPermissions: YAML numbers become float64.
	if m.Scopes != nil {
		b, err := json.Marshal(m.Scopes)
		if err != nil {
			return fmt.Errorf("mcp.scopes: %w", err)
		}
		var scopes map[string][]api.Permission
		if err := json.Unmarshal(b, &scopes); err != nil {
			return fmt.Errorf("mcp.scopes: %w", err)
		}
		m.Scopes = scopes
	}
	if len(m.AllowedResources) == 0 {
		// Every token is for a resource (RFC 8707) among these: with none,
		// every authorization request would be refused (invalid_target).
		return errors.New("mcp.allowedResources is required: the URIs of the MCP servers tokens are for, such as [https://mcp.example.com/mcp]")
	}
	if err := m.OAuth().Validate(); err != nil {
		return fmt.Errorf("mcp: %s", strings.TrimPrefix(err.Error(), "oauth: "))
	}
	return nil
}

// mergeScopePermissions gives the scopes KavachOS's list form names the
// permissions mcp.scopePermissions holds for them.
func (m *MCP) mergeScopePermissions() error {
	for _, name := range slices.Sorted(maps.Keys(m.ScopePermissions)) {
		granted, ok := m.Scopes[name]
		switch {
		case !ok:
			return fmt.Errorf("mcp.scopePermissions.%s: mcp.scopes has no scope %q", name, name)
		case len(granted) > 0:
			return fmt.Errorf("mcp.scopePermissions.%s: mcp.scopes gives %q permissions already; give them in one place", name, name)
		}
		m.Scopes[name] = m.ScopePermissions[name]
	}
	return nil
}

// MaxMetadataBytes is the effective cap on an agent's metadata.
func (c Config) MaxMetadataBytes() int {
	if c.Agents.MaxMetadataBytes == 0 {
		return DefaultMaxMetadataBytes
	}
	return c.Agents.MaxMetadataBytes
}

// MaxPerUser is the effective cap on an owner's active agents.
func (c Config) MaxPerUser() int {
	if c.Agents.MaxPerUser == nil {
		return DefaultMaxPerUser
	}
	return *c.Agents.MaxPerUser
}

// MaxExpiry is the longest lifetime an agent or key can be given: 100
// years.
const MaxExpiry = 36500 * Day

// DefaultTokenExpiry is a new agent's lifetime when agents.tokenExpiry is
// left out: KavachOS's default, so that code moved over keeps its agents'
// lifetimes.
const DefaultTokenExpiry = 24 * time.Hour

var tokenExpiryRule = Rule{Name: "agents.tokenExpiry", Min: time.Second, Max: MaxExpiry, Step: time.Second,
	Examples: "30m, 24h, 7d", Unset: "the default, 24h", Zero: "for no expiry"}

// TokenExpiry is the default lifetime of a new agent: agents.tokenExpiry,
// DefaultTokenExpiry when unset, 0 (none) when set to 0; call after
// Validate.
func (c Config) TokenExpiry() time.Duration {
	if c.Agents.TokenExpiry == "" {
		return DefaultTokenExpiry
	}
	d, _ := tokenExpiryRule.Parse(string(c.Agents.TokenExpiry))
	return d
}

// exampleURL is the form of a server database's URL, for messages.
func exampleURL(provider string) string {
	if provider == "mysql" {
		return "mysql://user:password@host:3306/db"
	}
	return "postgres://user:password@host:5432/db"
}

// isMySQLURL reports whether a database URL names MySQL (or MariaDB).
func isMySQLURL(u string) bool {
	scheme, _, ok := strings.Cut(u, "://")
	return ok && strings.EqualFold(scheme, "mysql")
}

// libpqKeywords is the start of a libpq keyword/value connection string
// (host=… password=…), which would otherwise be taken for a file name.
var libpqKeywords = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)

// checkDatabaseURL refuses a database.url that is neither a SQLite file
// path (or :memory:, or a file: URI) nor a postgres:// or mysql:// URL.
// The value is never repeated: it may hold a password.
func checkDatabaseURL(u string) error {
	if scheme, _, ok := strings.Cut(u, "://"); ok && !strings.ContainsAny(scheme, "/\\") {
		switch strings.ToLower(scheme) {
		case "postgres", "postgresql", "mysql", "file":
			return nil
		}
		return fmt.Errorf("database.url (--database, KAVACH_DATABASE_URL) has the scheme %q: give a postgres:// or mysql:// URL or a SQLite file path", scheme)
	}
	if libpqKeywords.MatchString(u) {
		return errors.New("database.url (--database, KAVACH_DATABASE_URL) looks like a libpq connection string (key=value …), " +
			"which is not supported: give a postgres://user:password@host:5432/db URL (the value is not repeated here: it may hold a password)")
	}
	return nil
}

// Secrets returns the current secret and the previous one (zero values
// when unset). Validate has checked both.
func (c Config) Secrets() (current, previous secret.Secret) {
	current, _ = secret.New(c.Secret)
	previous, _ = secret.New(c.PreviousSecret)
	return current, previous
}

// BodyLimit is server.maxBodyBytes, or 0 (the sidecar's default) when unset.
func (c Config) BodyLimit() int64 {
	if c.Server.MaxBodyBytes == nil {
		return 0
	}
	return *c.Server.MaxBodyBytes
}

// CheckPublicURL accepts an http(s) base URL with a host and no user
// information, query or fragment.
func CheckPublicURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not an http(s) URL, such as https://kavach.example.com", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return errors.New("the URL carries user information")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("%q has a query or a fragment: give a base URL", s)
	}
	return nil
}
