package config

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// Webhook is one endpoint that receives events, signed as the Standard
// Webhooks specification says (standardwebhooks.com).
type Webhook struct {
	// ID names the endpoint in deliveries, metrics and logs (wh_<id>);
	// by default a hash of the URL. Name it when the URL holds a token,
	// and to keep its pending deliveries when the URL changes.
	ID string `yaml:"id"`
	// URL receives a POST per event: http(s).
	URL string `yaml:"url"`
	// Secret signs each delivery: whsec_ and the base64 of 24 to 64
	// random bytes. SecretEnv names an environment variable holding it
	// instead, to keep it out of the file; one of the two is required.
	Secret    string `yaml:"secret"`
	SecretEnv string `yaml:"secretEnv"`
	// PreviousSecret (or PreviousSecretEnv), while a secret is rotated,
	// signs each delivery too: webhook-signature then holds both
	// signatures, and receivers still holding the old secret verify.
	PreviousSecret    string `yaml:"previousSecret"`
	PreviousSecretEnv string `yaml:"previousSecretEnv"`
	// Events are the event types the endpoint receives.
	Events []string `yaml:"events"`
}

// Events configures the event record behind webhooks and GET /v1/events.
type Events struct {
	// Retention is how long events, and settled deliveries, are kept
	// (default 7d). A pending delivery is kept until it settles.
	Retention Duration `yaml:"retention"`
	// Decisions are the decision event types (authorize.denied,
	// authorize.allowed) recorded for GET /v1/events though no webhook
	// subscribes to them (a subscription records its types anyway).
	// Default none: they come at the rate of decisions.
	Decisions []string `yaml:"decisions"`
}

// DefaultEventRetention is how long events are kept by default.
const DefaultEventRetention = 7 * Day

// MaxWebhooks bounds the endpoints: each event is one row per endpoint.
const MaxWebhooks = 32

var eventRetentionRule = Rule{Name: "events.retention", Min: time.Hour, Max: 366 * Day, Step: time.Hour,
	Examples: "24h, 7d, 4w", Unset: "the default, 7d"}

// WebhookEndpoint is a webhook with its secret decoded and its ID: what
// the delivery worker needs.
type WebhookEndpoint struct {
	// ID names the endpoint in deliveries and metrics without showing
	// its URL (which may hold a token): wh_ and a hash of the URL.
	ID  string
	URL string
	// Keys are the signing keys (the secrets' decoded bytes: the current
	// one, then the previous one while rotating); none signs nothing
	// (approval.webhookUrl, which had no secret).
	Keys   [][]byte
	Events []string
	// Legacy marks approval.webhookUrl: its body also carries the request
	// as "approval", as before.
	Legacy bool
}

// EndpointID is the ID of the endpoint at rawURL.
func EndpointID(rawURL string) string {
	h := sha256.Sum256([]byte(rawURL))
	return "wh_" + hex.EncodeToString(h[:6])
}

// endpointID is webhooks[i]'s ID: wh_ and its id, or a hash of its URL.
func (c Config) endpointID(i int) string {
	if id := c.Webhooks[i].ID; id != "" {
		return "wh_" + id
	}
	return EndpointID(c.Webhooks[i].URL)
}

// ParseWebhookSecret decodes a whsec_ secret into its key bytes.
func ParseWebhookSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, fmt.Errorf("must start with whsec_ (whsec_ and the base64 of 24 to 64 random bytes; `openssl rand -base64 32` makes one)")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("the part after whsec_ is not standard base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("decodes to %d bytes; the Standard Webhooks specification asks for 24 to 64", len(key))
	}
	return key, nil
}

func validHTTPURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "https" || p.Scheme == "http") && p.Host != "" && p.User == nil && p.Fragment == ""
}

// sameEndpoint is u as far as it names a receiver: scheme and host in
// lower case, without a default port, so two spellings of one URL are
// seen as one.
func sameEndpoint(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	host := strings.ToLower(p.Hostname())
	if port := p.Port(); port != "" && (p.Scheme != "https" || port != "443") && (p.Scheme != "http" || port != "80") {
		host += ":" + port
	}
	return strings.ToLower(p.Scheme) + "://" + host + p.EscapedPath() + "?" + p.RawQuery
}

var endpointIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (c *Config) validateWebhooks() error {
	if len(c.Webhooks) > MaxWebhooks {
		return fmt.Errorf("webhooks: %d endpoints; at most %d", len(c.Webhooks), MaxWebhooks)
	}
	seen, ids := map[string]int{}, map[string]int{}
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhooks[%d]", i)
		if !validHTTPURL(w.URL) {
			return fmt.Errorf("%s.url must be an http(s) URL without user:password or #fragment (put a token in the path or query if the receiver needs one)", key)
		}
		if j, dup := seen[sameEndpoint(w.URL)]; dup {
			return fmt.Errorf("%s.url is the URL of webhooks[%d] too: list the endpoint once, with every event it receives", key, j)
		}
		seen[sameEndpoint(w.URL)] = i
		if w.ID != "" && !endpointIDPattern.MatchString(w.ID) {
			return fmt.Errorf("%s.id must be 1 to 63 lower-case letters, digits, - and _, starting with a letter or digit", key)
		}
		if j, dup := ids[c.endpointID(i)]; dup {
			return fmt.Errorf("%s.id is the id of webhooks[%d] too", key, j)
		}
		ids[c.endpointID(i)] = i
		if c.Approval.WebhookURL != "" && sameEndpoint(c.Approval.WebhookURL) == sameEndpoint(w.URL) {
			return fmt.Errorf("%s.url is also approval.webhookUrl: subscribe it to approval.requested here and drop approval.webhookUrl", key)
		}
		if _, err := c.webhookKeys(i); err != nil {
			return err
		}
		if len(w.Events) == 0 {
			return fmt.Errorf("%s.events is empty: list the event types the endpoint receives (%s)", key, strings.Join(domain.EventTypes, ", "))
		}
		for j, t := range w.Events {
			if !slices.Contains(domain.EventTypes, t) {
				return fmt.Errorf("%s.events[%d]: %q is not an event type (%s)", key, j, t, strings.Join(domain.EventTypes, ", "))
			}
			if slices.Index(w.Events, t) != j {
				return fmt.Errorf("%s.events[%d]: %q is listed twice", key, j, t)
			}
		}
	}
	if _, err := eventRetentionRule.Parse(string(c.Events.Retention)); err != nil {
		return err
	}
	for i, t := range c.Events.Decisions {
		if !domain.IsDecisionEvent(t) {
			return fmt.Errorf("events.decisions[%d]: %q is not a decision event type (authorize.denied, authorize.allowed)", i, t)
		}
	}
	return nil
}

// webhookKeys are the signing keys of webhooks[i]: its secret, from secret
// or secretEnv (required), then its previous secret, if set.
func (c *Config) webhookKeys(i int) ([][]byte, error) {
	w := c.Webhooks[i]
	key := fmt.Sprintf("webhooks[%d]", i)
	current, err := secretOf(key, "secret", w.Secret, w.SecretEnv)
	if err != nil {
		return nil, err
	}
	if current == nil {
		return nil, fmt.Errorf("%s: a secret is required (secret: whsec_…, or secretEnv naming a variable that holds it): receivers verify each delivery with it", key)
	}
	previous, err := secretOf(key, "previousSecret", w.PreviousSecret, w.PreviousSecretEnv)
	if err != nil || previous == nil {
		return [][]byte{current}, err
	}
	return [][]byte{current, previous}, nil
}

// secretOf decodes the secret named name of webhook key, given as the
// literal or in the environment variable env; nil when neither is set.
func secretOf(key, name, literal, env string) ([]byte, error) {
	switch {
	case literal != "" && env != "":
		return nil, fmt.Errorf("%s: set %s or %sEnv, not both", key, name, name)
	case env != "":
		v := os.Getenv(env)
		if v == "" {
			return nil, fmt.Errorf("%s.%sEnv: the environment variable %s is not set", key, name, env)
		}
		b, err := ParseWebhookSecret(v)
		if err != nil {
			return nil, fmt.Errorf("%s.%sEnv: %s %w", key, name, env, err)
		}
		return b, nil
	case literal != "":
		b, err := ParseWebhookSecret(literal)
		if err != nil {
			return nil, fmt.Errorf("%s.%s %w", key, name, err)
		}
		return b, nil
	}
	return nil, nil
}

// WebhookEndpoints are the webhooks, and approval.webhookUrl as a
// subscription to approval.requested; call after Validate.
func (c Config) WebhookEndpoints() []WebhookEndpoint {
	var out []WebhookEndpoint
	for i, w := range c.Webhooks {
		k, _ := c.webhookKeys(i)
		out = append(out, WebhookEndpoint{ID: c.endpointID(i), URL: w.URL, Keys: k, Events: slices.Clone(w.Events)})
	}
	if u := c.Approval.WebhookURL; u != "" {
		out = append(out, WebhookEndpoint{ID: EndpointID(u), URL: u, Events: []string{domain.EventApprovalRequested}, Legacy: true})
	}
	return out
}

// EventRetention is events.retention (default 7d); call after Validate.
func (c Config) EventRetention() time.Duration {
	d, _ := eventRetentionRule.Parse(string(c.Events.Retention))
	if d == 0 {
		return DefaultEventRetention
	}
	return d
}
