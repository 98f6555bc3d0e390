// Package client is a Go client for the sidecar API, used by the CLI and
// the end-to-end tests.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
)

// Client talks to one sidecar.
type Client struct {
	base string
	http *http.Client
	// dial, if set, connects to a Unix socket instead of base's host.
	dial func(ctx context.Context, _, _ string) (net.Conn, error)
	key  string
}

// New returns a client for the sidecar at base: http://127.0.0.1:7400,
// https://…, or unix:///path/kavach.sock for a Unix socket.
func New(base string) *Client {
	c := &Client{http: &http.Client{Timeout: 30 * time.Second}}
	if path, ok := strings.CutPrefix(base, "unix://"); ok {
		var d net.Dialer
		c.dial = func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", path) }
		c.http.Transport = &http.Transport{DialContext: c.dial}
		c.base = "http://localhost"
		return c
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c.base = strings.TrimRight(base, "/")
	return c
}

// AdminKeyFile is where a sidecar's first start writes the bootstrap admin
// key: KAVACH_ADMIN_KEY_FILE, else ~/.config/kavach/admin-key
// ($XDG_CONFIG_HOME/kavach/admin-key); "" if there is no home.
func AdminKeyFile() string {
	if f := os.Getenv("KAVACH_ADMIN_KEY_FILE"); f != "" {
		return f
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "kavach", "admin-key")
}

// KeyFromEnv finds a credential the way the CLI does after its --api-key
// flag: KAVACH_API_KEY, then KAVACH_ADMIN_KEY, then the bootstrap key file
// (AdminKeyFile); "" if none.
func KeyFromEnv() string {
	for _, v := range []string{"KAVACH_API_KEY", "KAVACH_ADMIN_KEY"} {
		if k := os.Getenv(v); k != "" {
			return k
		}
	}
	if f := AdminKeyFile(); f != "" {
		if b, err := os.ReadFile(f); err == nil { //nolint:gosec // G304: the user's own key file (KAVACH_ADMIN_KEY_FILE or the default)
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

// WithAPIKey returns a copy of c that sends key (kvk_… or the
// KAVACH_ADMIN_KEY) as its credential.
func (c *Client) WithAPIKey(key string) *Client {
	cp := *c
	cp.key = key
	return &cp
}

// Error is an error response from the sidecar.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message) }

// newRequest builds a request with the client's credentials. agentToken,
// if set, is an agent's token: sent beside the API key in
// Kavach-Agent-Token (the app asking for that agent's decision), or as the
// credential itself when the client has no key (the agent asking for
// itself).
func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader, agentToken string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	switch {
	case agentToken != "" && c.key != "":
		req.Header.Set("Authorization", "Bearer "+c.key)
		req.Header.Set(api.AgentTokenHeader, agentToken)
	case agentToken != "":
		req.Header.Set("Authorization", "Bearer "+agentToken)
	case c.key != "":
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, method, path string, body any, agentToken string, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, rd, agentToken)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return nil
}

func readError(resp *http.Response) error {
	var eb api.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &eb) != nil || eb.Error.Code == "" {
		return &Error{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(b))}
	}
	return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
}

// CreateAgent creates an agent; the result carries its token.
func (c *Client) CreateAgent(ctx context.Context, req api.CreateAgentRequest) (api.AgentWithToken, error) {
	var out api.AgentWithToken
	return out, c.do(ctx, http.MethodPost, "/v1/agents", req, "", &out)
}

// Page selects one page of a list: Limit items (0: the server's default,
// api.DefaultPageLimit; at most api.MaxPageLimit) after Cursor, the
// NextCursor of the page before ("" for the first page).
type Page struct {
	Limit  int
	Cursor string
}

// filtered is the query of a list page with its filters; empty filters are
// left out.
func (p Page) filtered(filters map[string]string) url.Values {
	q := url.Values{}
	for k, v := range filters {
		if v != "" {
			q.Set(k, v)
		}
	}
	return p.set(q)
}

func (p Page) set(q url.Values) url.Values {
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Cursor != "" {
		q.Set("cursor", p.Cursor)
	}
	return q
}

// query is "?" and q encoded, or "" when q is empty.
func query(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// listAll reads a list page after page, from p.Cursor on, until it ends or
// upTo items (0: no cap) have come. Each page asks for p.Limit items (0:
// api.DefaultPageLimit), fewer as upTo nears, so the last page ends at upTo
// and the cursor returned continues right after it ("" when the list
// ended).
func listAll[T any](p Page, upTo int, page func(Page) ([]T, string, error)) ([]T, string, error) {
	size := p.Limit
	if size <= 0 {
		size = api.DefaultPageLimit
	}
	out := []T{}
	for {
		p.Limit = size
		if upTo > 0 {
			p.Limit = min(size, upTo-len(out))
		}
		items, next, err := page(p)
		if err != nil {
			return nil, "", err
		}
		out = append(out, items...)
		if next == "" || (upTo > 0 && len(out) >= upTo) {
			return out, next, nil
		}
		if next == p.Cursor {
			return nil, "", fmt.Errorf("the server returned the cursor it was given (%q): stopping", next)
		}
		p.Cursor = next
	}
}

// AgentFilter selects agents by owner and status (both optional), a page
// at a time (Limit, Cursor: see Page).
type AgentFilter struct {
	OwnerID, Status string
	Limit           int
	Cursor          string
}

// ListAgents reads one page of agents, oldest first; NextCursor continues.
func (c *Client) ListAgents(ctx context.Context, f AgentFilter) (api.AgentList, error) {
	q := Page{Limit: f.Limit, Cursor: f.Cursor}.set(url.Values{})
	if f.OwnerID != "" {
		q.Set("ownerId", f.OwnerID)
	}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	var out api.AgentList
	return out, c.do(ctx, http.MethodGet, "/v1/agents"+query(q), nil, "", &out)
}

// ListAllAgents reads every matching agent from f.Cursor on, f.Limit per
// page, or only the first upTo (0: all); NextCursor continues after
// them ("" when none are left).
func (c *Client) ListAllAgents(ctx context.Context, f AgentFilter, upTo int) (api.AgentList, error) {
	agents, next, err := listAll(Page{Limit: f.Limit, Cursor: f.Cursor}, upTo, func(p Page) ([]api.Agent, string, error) {
		f.Limit, f.Cursor = p.Limit, p.Cursor
		l, err := c.ListAgents(ctx, f)
		return l.Agents, l.NextCursor, err
	})
	return api.AgentList{Agents: agents, NextCursor: next}, err
}

// GetAgent reads one agent.
func (c *Client) GetAgent(ctx context.Context, id string) (api.Agent, error) {
	var out api.Agent
	return out, c.do(ctx, http.MethodGet, "/v1/agents/"+url.PathEscape(id), nil, "", &out)
}

// UpdateAgent patches an agent.
func (c *Client) UpdateAgent(ctx context.Context, id string, req api.UpdateAgentRequest) (api.Agent, error) {
	var out api.Agent
	return out, c.do(ctx, http.MethodPatch, "/v1/agents/"+url.PathEscape(id), req, "", &out)
}

// RotateAgent issues a new token.
func (c *Client) RotateAgent(ctx context.Context, id string) (api.AgentWithToken, error) {
	var out api.AgentWithToken
	return out, c.do(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(id)+"/rotate", nil, "", &out)
}

// RevokeAgent revokes an agent permanently.
func (c *Client) RevokeAgent(ctx context.Context, id string) (api.Agent, error) {
	var out api.Agent
	return out, c.do(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(id)+"/revoke", nil, "", &out)
}

// Authorize asks for a decision; token, if set, identifies the agent instead
// of req.AgentID.
func (c *Client) Authorize(ctx context.Context, req api.AuthorizeRequest, token string) (api.AuthorizeResponse, error) {
	var out api.AuthorizeResponse
	return out, c.do(ctx, http.MethodPost, "/v1/authorize", req, token, &out)
}

// AuditFilter holds the audit query parameters; empty ones are left out.
type AuditFilter struct {
	AgentID, UserID, Result, Since, Until, Cursor string
	// Kind is decision or event; Action one action (agent.update, …).
	Kind, Action string
	Limit        int
}

func (f AuditFilter) values() url.Values {
	return Page{Limit: max(f.Limit, 0), Cursor: f.Cursor}.filtered(map[string]string{"agentId": f.AgentID, "userId": f.UserID,
		"result": f.Result, "since": f.Since, "until": f.Until, "kind": f.Kind, "action": f.Action})
}

// QueryAudit reads one page of audit entries.
func (c *Client) QueryAudit(ctx context.Context, f AuditFilter) (api.AuditPage, error) {
	var out api.AuditPage
	return out, c.do(ctx, http.MethodGet, "/v1/audit?"+f.values().Encode(), nil, "", &out)
}

// ExportAudit streams an export (format csv or json) into w.
func (c *Client) ExportAudit(ctx context.Context, f AuditFilter, format string, w io.Writer) error {
	q := f.values()
	q.Set("format", format)
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/audit/export?"+q.Encode(), nil, "")
	if err != nil {
		return err
	}
	// An export may take longer than the client's default timeout.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readError(resp)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// Health reads /health.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var out api.Health
	return out, c.do(ctx, http.MethodGet, "/health", nil, "", &out)
}

// Delegate creates a delegation.
func (c *Client) Delegate(ctx context.Context, req api.DelegateRequest) (api.Delegation, error) {
	var out api.Delegation
	return out, c.do(ctx, http.MethodPost, "/v1/delegations", req, "", &out)
}

// ListDelegations reads one page of the delegations from and to an agent,
// oldest first; NextCursor continues.
func (c *Client) ListDelegations(ctx context.Context, agentID string, p Page) (api.DelegationList, error) {
	var out api.DelegationList
	return out, c.do(ctx, http.MethodGet, "/v1/agents/"+url.PathEscape(agentID)+"/delegations"+query(p.set(url.Values{})), nil, "", &out)
}

// ListAllDelegations reads every delegation from and to an agent from
// p.Cursor on, p.Limit per page, or only the first upTo (0: all);
// NextCursor continues after them ("" when none are left).
func (c *Client) ListAllDelegations(ctx context.Context, agentID string, p Page, upTo int) (api.DelegationList, error) {
	ds, next, err := listAll(p, upTo, func(p Page) ([]api.Delegation, string, error) {
		l, err := c.ListDelegations(ctx, agentID, p)
		return l.Delegations, l.NextCursor, err
	})
	return api.DelegationList{Delegations: ds, NextCursor: next}, err
}

// RevokeDelegation revokes a delegation.
func (c *Client) RevokeDelegation(ctx context.Context, id string) (api.Delegation, error) {
	var out api.Delegation
	return out, c.do(ctx, http.MethodPost, "/v1/delegations/"+url.PathEscape(id)+"/revoke", nil, "", &out)
}

// EffectivePermissions reads an agent's own and delegated permissions.
func (c *Client) EffectivePermissions(ctx context.Context, agentID string) (api.EffectivePermissions, error) {
	var out api.EffectivePermissions
	return out, c.do(ctx, http.MethodGet, "/v1/agents/"+url.PathEscape(agentID)+"/effective-permissions", nil, "", &out)
}

// ApprovalFilter selects approval requests by status, owner and agent
// (all optional), a page at a time (Limit, Cursor: see Page).
type ApprovalFilter struct {
	Status, OwnerID, AgentID string
	Limit                    int
	Cursor                   string
}

// ListApprovals reads one page of approval requests, newest first;
// NextCursor continues.
func (c *Client) ListApprovals(ctx context.Context, f ApprovalFilter) (api.ApprovalList, error) {
	q := Page{Limit: f.Limit, Cursor: f.Cursor}.filtered(map[string]string{"status": f.Status, "ownerId": f.OwnerID, "agentId": f.AgentID})
	var out api.ApprovalList
	return out, c.do(ctx, http.MethodGet, "/v1/approvals"+query(q), nil, "", &out)
}

// ListAllApprovals reads every matching approval request from f.Cursor
// on, f.Limit per page, or only the first upTo (0: all); NextCursor
// continues after them ("" when none are left).
func (c *Client) ListAllApprovals(ctx context.Context, f ApprovalFilter, upTo int) (api.ApprovalList, error) {
	as, next, err := listAll(Page{Limit: f.Limit, Cursor: f.Cursor}, upTo, func(p Page) ([]api.Approval, string, error) {
		f.Limit, f.Cursor = p.Limit, p.Cursor
		l, err := c.ListApprovals(ctx, f)
		return l.Approvals, l.NextCursor, err
	})
	return api.ApprovalList{Approvals: as, NextCursor: next}, err
}

// GetApproval reads one approval request.
func (c *Client) GetApproval(ctx context.Context, id string) (api.Approval, error) {
	var out api.Approval
	return out, c.do(ctx, http.MethodGet, "/v1/approvals/"+url.PathEscape(id), nil, "", &out)
}

// ResolveApproval approves (approve=true) or denies a pending request.
func (c *Client) ResolveApproval(ctx context.Context, id string, approve bool, req api.ResolveApprovalRequest) (api.Approval, error) {
	verb := "deny"
	if approve {
		verb = "approve"
	}
	var out api.Approval
	return out, c.do(ctx, http.MethodPost, "/v1/approvals/"+url.PathEscape(id)+"/"+verb, req, "", &out)
}

// Bundle downloads an OPA bundle of the sidecar's policies and data.
func (c *Client) Bundle(ctx context.Context, w io.Writer) error {
	return c.copyGet(ctx, "/v1/bundle", "bundle", w)
}

// Metrics writes the sidecar's /metrics (Prometheus text format) to w; the
// key needs role metrics or admin.
func (c *Client) Metrics(ctx context.Context, w io.Writer) error {
	return c.copyGet(ctx, "/metrics", "metrics", w)
}

// copyGet writes the body of GET path to w; what names it in errors.
func (c *Client) copyGet(ctx context.Context, path, what string, w io.Writer) error {
	req, err := c.newRequest(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readError(resp)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// AuthorizeExplained asks for a decision with its explanation.
func (c *Client) AuthorizeExplained(ctx context.Context, req api.AuthorizeRequest, token string) (api.AuthorizeResponse, error) {
	var out api.AuthorizeResponse
	return out, c.do(ctx, http.MethodPost, "/v1/authorize?explain=true", req, token, &out)
}

// Policies lists the loaded policies.
func (c *Client) Policies(ctx context.Context) (api.PolicyList, error) {
	var out api.PolicyList
	return out, c.do(ctx, http.MethodGet, "/v1/policies", nil, "", &out)
}

// NewWithHTTP is New with a given HTTP client (timeouts, transports).
func NewWithHTTP(base string, hc *http.Client) *Client {
	c := New(base)
	if c.dial != nil && hc.Transport == nil {
		cp := *hc
		cp.Transport = c.http.Transport
		hc = &cp
	}
	c.http = hc
	return c
}

// Ready returns nil when the sidecar answers /ready with 200.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/ready", nil, "", nil)
}

// RotateOAuthKey makes a new signing key for MCP access tokens and returns
// the published key set.
func (c *Client) RotateOAuthKey(ctx context.Context) (api.KeySet, error) {
	var out api.KeySet
	return out, c.do(ctx, http.MethodPost, "/v1/oauth/keys/rotate", nil, "", &out)
}

// CreateKey creates an API key; the result carries the key, shown once.
func (c *Client) CreateKey(ctx context.Context, req api.CreateKeyRequest) (api.KeyWithSecret, error) {
	var out api.KeyWithSecret
	return out, c.do(ctx, http.MethodPost, "/v1/keys", req, "", &out)
}

// ListKeys reads one page of API keys, oldest first (never a secret);
// NextCursor continues.
func (c *Client) ListKeys(ctx context.Context, p Page) (api.KeyList, error) {
	var out api.KeyList
	return out, c.do(ctx, http.MethodGet, "/v1/keys"+query(p.set(url.Values{})), nil, "", &out)
}

// ListAllKeys reads every API key from p.Cursor on, p.Limit per page, or
// only the first upTo (0: all); NextCursor continues after them (""
// when none are left).
func (c *Client) ListAllKeys(ctx context.Context, p Page, upTo int) (api.KeyList, error) {
	keys, next, err := listAll(p, upTo, func(p Page) ([]api.APIKey, string, error) {
		l, err := c.ListKeys(ctx, p)
		return l.Keys, l.NextCursor, err
	})
	return api.KeyList{Keys: keys, NextCursor: next}, err
}

// GetKey reads one API key.
func (c *Client) GetKey(ctx context.Context, id string) (api.APIKey, error) {
	var out api.APIKey
	return out, c.do(ctx, http.MethodGet, "/v1/keys/"+url.PathEscape(id), nil, "", &out)
}

// RevokeKey revokes an API key.
func (c *Client) RevokeKey(ctx context.Context, id string) (api.APIKey, error) {
	var out api.APIKey
	return out, c.do(ctx, http.MethodPost, "/v1/keys/"+url.PathEscape(id)+"/revoke", nil, "", &out)
}

// ResumeAgent lifts an agent's suspension (admin only).
func (c *Client) ResumeAgent(ctx context.Context, id string) (api.Agent, error) {
	var out api.Agent
	return out, c.do(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(id)+"/resume", nil, "", &out)
}

// AgentTrust reads an agent's trust score, level and factors.
func (c *Client) AgentTrust(ctx context.Context, id string) (api.Trust, error) {
	var out api.Trust
	return out, c.do(ctx, http.MethodGet, "/v1/agents/"+url.PathEscape(id)+"/trust", nil, "", &out)
}

// AnomalyFilter selects anomalies by agent, type and detection time (all
// optional; Since is an RFC 3339 time), a page at a time (Limit, Cursor:
// see Page).
type AnomalyFilter struct {
	AgentID, Type, Since string
	Limit                int
	Cursor               string
}

// ListAnomalies reads one page of anomalies, newest first; NextCursor
// continues.
func (c *Client) ListAnomalies(ctx context.Context, f AnomalyFilter) (api.AnomalyList, error) {
	q := Page{Limit: f.Limit, Cursor: f.Cursor}.filtered(map[string]string{"agentId": f.AgentID, "type": f.Type, "since": f.Since})
	var out api.AnomalyList
	return out, c.do(ctx, http.MethodGet, "/v1/anomalies"+query(q), nil, "", &out)
}

// ListAllAnomalies reads every matching anomaly from f.Cursor on, f.Limit
// per page, or only the first upTo (0: all); NextCursor continues after
// them ("" when none are left).
func (c *Client) ListAllAnomalies(ctx context.Context, f AnomalyFilter, upTo int) (api.AnomalyList, error) {
	as, next, err := listAll(Page{Limit: f.Limit, Cursor: f.Cursor}, upTo, func(p Page) ([]api.Anomaly, string, error) {
		f.Limit, f.Cursor = p.Limit, p.Cursor
		l, err := c.ListAnomalies(ctx, f)
		return l.Anomalies, l.NextCursor, err
	})
	return api.AnomalyList{Anomalies: as, NextCursor: next}, err
}
