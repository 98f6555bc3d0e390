package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The OAuth 2.1 authorization server's state: registered clients, pending
// authorization requests, codes, grants (the token family of one code),
// refresh and access tokens, and signing keys. Hashes are SHA-256 hex of
// high-entropy random values; the raw values are never stored.

// OAuth request statuses.
const (
	OAuthPending  = "pending"
	OAuthApproved = "approved"
	OAuthDenied   = "denied"
)

// OAuthClient is a registered OAuth client. SecretHash is empty for public
// clients (AuthMethod "none").
type OAuthClient struct {
	ID           string
	SecretHash   string
	Name         string
	RedirectURIs []string
	GrantTypes   []string
	AuthMethod   string
	// Scopes limits a pre-registered client to these scopes; kept in
	// memory with the configuration, never stored.
	Scopes    []string
	CreatedAt time.Time
}

// OAuthRequest is an authorization request waiting for the app's decision.
// RedirectParam is the redirect_uri parameter as sent ("" if omitted).
type OAuthRequest struct {
	HandleHash    string
	ClientID      string
	RedirectURI   string
	RedirectParam string
	Scopes        []string
	Resource      string
	State         string
	CodeChallenge string
	Status        string
	UserID        string
	ExpiresAt     time.Time
	CreatedAt     time.Time
	DecidedAt     *time.Time
}

// OAuthCode is an authorization code. UsedAt and GrantID are set once it
// is redeemed.
type OAuthCode struct {
	Hash          string
	ClientID      string
	UserID        string
	AgentID       string
	RedirectURI   string
	RedirectParam string
	Scopes        []string
	Resource      string
	CodeChallenge string
	ExpiresAt     time.Time
	CreatedAt     time.Time
	UsedAt        *time.Time
	GrantID       string
}

// OAuthGrant is the family of tokens issued from one code.
type OAuthGrant struct {
	ID        string
	ClientID  string
	UserID    string
	AgentID   string
	Scopes    []string
	Resource  string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// OAuthRefreshToken is a refresh token; UsedAt is set when it is rotated.
// RevokedAt is the token's own revocation or, when read, its grant's.
type OAuthRefreshToken struct {
	Hash      string
	GrantID   string
	ExpiresAt time.Time
	CreatedAt time.Time
	UsedAt    *time.Time
	RevokedAt *time.Time
}

// OAuthAccessToken records an issued JWT access token by its jti, with
// the scopes it was issued for (its grant's, or fewer after a refresh).
// RevokedAt is the token's own revocation or, when read, its grant's.
type OAuthAccessToken struct {
	JTI       string
	GrantID   string
	ClientID  string
	Scopes    []string
	ExpiresAt time.Time
	CreatedAt time.Time
	RevokedAt *time.Time
}

// OAuthKey is a token-signing key. PrivateKey is as the oauth package
// keeps it (sealed with a key derived from the secret; base64 PKCS#8 DER
// in rows written before that); the active key has no RetiredAt.
type OAuthKey struct {
	ID         string
	Alg        string
	PrivateKey string
	CreatedAt  time.Time
	RetiredAt  *time.Time
}

// OAuthIssue is what redeeming a code or rotating a refresh token writes:
// the access token and, when the grant allows refreshing, a refresh token.
type OAuthIssue struct {
	Access  OAuthAccessToken
	Refresh *OAuthRefreshToken
}

func joinScopes(s []string) string { return strings.Join(s, " ") }

func splitScopes(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Fields(s)
}

// CreateOAuthClient registers a client and returns it with its new ID
// (unless c.ID is set, as for pre-registered clients).
func (s *Store) CreateOAuthClient(ctx context.Context, c OAuthClient) (OAuthClient, error) {
	now := s.now()
	if c.ID == "" {
		c.ID = s.ids.next("mcp_", now)
	}
	c.CreatedAt = fromMillis(toMillis(now))
	uris, err := json.Marshal(nonNil(c.RedirectURIs))
	if err != nil {
		return OAuthClient{}, fmt.Errorf("create oauth client: %w", err)
	}
	grants, err := json.Marshal(nonNil(c.GrantTypes))
	if err != nil {
		return OAuthClient{}, fmt.Errorf("create oauth client: %w", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	_, err = s.w.ExecContext(ctx, `INSERT INTO oauth_clients (id, secret_hash, name, redirect_uris, grant_types, auth_method, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, c.ID, c.SecretHash, c.Name, string(uris), string(grants), c.AuthMethod, toMillis(now))
	if s.dialect.isUniqueViolation(err) {
		return OAuthClient{}, fmt.Errorf("create oauth client %s: %w", c.ID, ErrConflict)
	}
	if err != nil {
		return OAuthClient{}, fmt.Errorf("create oauth client: %w", err)
	}
	return c, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetOAuthClient returns a registered client, or ErrNotFound.
func (s *Store) GetOAuthClient(ctx context.Context, id string) (OAuthClient, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var (
		c             OAuthClient
		uris, grants  string
		createdMillis int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT id, secret_hash, name, redirect_uris, grant_types, auth_method, created_at
		FROM oauth_clients WHERE id = ?`, id).Scan(&c.ID, &c.SecretHash, &c.Name, &uris, &grants, &c.AuthMethod, &createdMillis)
	if errors.Is(err, sql.ErrNoRows) {
		return OAuthClient{}, fmt.Errorf("oauth client %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return OAuthClient{}, fmt.Errorf("get oauth client %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(uris), &c.RedirectURIs); err != nil {
		return OAuthClient{}, fmt.Errorf("oauth client %s redirect URIs: %w", id, err)
	}
	if err := json.Unmarshal([]byte(grants), &c.GrantTypes); err != nil {
		return OAuthClient{}, fmt.Errorf("oauth client %s grant types: %w", id, err)
	}
	c.CreatedAt = fromMillis(createdMillis)
	return c, nil
}

// CreateOAuthRequest stores a pending authorization request.
func (s *Store) CreateOAuthRequest(ctx context.Context, r OAuthRequest) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	_, err := s.w.ExecContext(ctx, `INSERT INTO oauth_requests (handle_hash, client_id, redirect_uri, redirect_param, scopes,
		resource, state, code_challenge, status, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.HandleHash, r.ClientID, r.RedirectURI, r.RedirectParam, joinScopes(r.Scopes), r.Resource, r.State,
		r.CodeChallenge, OAuthPending, toMillis(r.ExpiresAt), toMillis(s.now()))
	if s.dialect.isUniqueViolation(err) {
		return fmt.Errorf("create oauth request: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create oauth request: %w", err)
	}
	return nil
}

const oauthRequestColumns = `handle_hash, client_id, redirect_uri, redirect_param, scopes, resource, state,
	code_challenge, status, user_id, expires_at, created_at, decided_at`

func scanOAuthRequest(row scanner) (OAuthRequest, error) {
	var (
		r                OAuthRequest
		scopes           string
		expires, created int64
		decided          sql.NullInt64
	)
	if err := row.Scan(&r.HandleHash, &r.ClientID, &r.RedirectURI, &r.RedirectParam, &scopes, &r.Resource, &r.State,
		&r.CodeChallenge, &r.Status, &r.UserID, &expires, &created, &decided); err != nil {
		return OAuthRequest{}, err
	}
	r.Scopes = splitScopes(scopes)
	r.ExpiresAt, r.CreatedAt, r.DecidedAt = fromMillis(expires), fromMillis(created), timePtr(decided)
	return r, nil
}

// GetOAuthRequest returns an authorization request, or ErrNotFound. An
// expired request is returned as is: the caller compares ExpiresAt.
func (s *Store) GetOAuthRequest(ctx context.Context, handleHash string) (OAuthRequest, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	r, err := scanOAuthRequest(s.r.QueryRowContext(ctx, `SELECT `+oauthRequestColumns+` FROM oauth_requests WHERE handle_hash = ?`, handleHash))
	if errors.Is(err, sql.ErrNoRows) {
		return OAuthRequest{}, fmt.Errorf("oauth request: %w", ErrNotFound)
	}
	if err != nil {
		return OAuthRequest{}, fmt.Errorf("get oauth request: %w", err)
	}
	return r, nil
}

// decideOAuthRequest moves a pending request to status in tx: ErrNotFound
// if there is no such request, ErrExpired past its expiry, ErrConflict if
// it was already decided.
func (s *Store) decideOAuthRequest(ctx context.Context, tx *txn, handleHash, status, userID string) (OAuthRequest, error) {
	now := s.now()
	if err := s.lockRow(ctx, tx, "oauth_requests", "handle_hash", handleHash); err != nil {
		return OAuthRequest{}, err
	}
	r, err := scanOAuthRequest(tx.QueryRowContext(ctx, `SELECT `+oauthRequestColumns+` FROM oauth_requests WHERE handle_hash = ?`, handleHash))
	if errors.Is(err, sql.ErrNoRows) {
		return OAuthRequest{}, fmt.Errorf("oauth request: %w", ErrNotFound)
	}
	if err != nil {
		return OAuthRequest{}, fmt.Errorf("get oauth request: %w", err)
	}
	if r.Status != OAuthPending {
		return r, fmt.Errorf("oauth request already %s: %w", r.Status, ErrConflict)
	}
	if !now.Before(r.ExpiresAt) {
		return r, fmt.Errorf("oauth request: %w", ErrExpired)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE oauth_requests SET status = ?, user_id = ?, decided_at = ? WHERE handle_hash = ?`,
		status, userID, toMillis(now), handleHash); err != nil {
		return OAuthRequest{}, fmt.Errorf("decide oauth request: %w", err)
	}
	r.Status, r.UserID = status, userID
	d := fromMillis(toMillis(now))
	r.DecidedAt = &d
	return r, nil
}

// ApproveOAuthRequest approves a pending request and stores its code in one
// transaction. A request decided before is ErrConflict, an expired one
// ErrExpired, an unknown one ErrNotFound.
func (s *Store) ApproveOAuthRequest(ctx context.Context, handleHash string, c OAuthCode) (OAuthRequest, error) {
	var out OAuthRequest
	err := s.withTx(ctx, func(tx *txn) error {
		r, err := s.decideOAuthRequest(ctx, tx, handleHash, OAuthApproved, c.UserID)
		if err != nil {
			return err
		}
		out = r
		_, err = tx.ExecContext(ctx, `INSERT INTO oauth_codes (code_hash, client_id, user_id, agent_id, redirect_uri,
			redirect_param, scopes, resource, code_challenge, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.Hash, r.ClientID, c.UserID, c.AgentID, r.RedirectURI, r.RedirectParam, joinScopes(c.Scopes), r.Resource,
			r.CodeChallenge, toMillis(c.ExpiresAt), toMillis(s.now()))
		if err != nil {
			return fmt.Errorf("store oauth code: %w", err)
		}
		return s.insertEvent(ctx, tx, Event{Action: "oauth.consent.approve", Target: r.ClientID, AgentID: c.AgentID,
			OwnerID: c.UserID, Reason: "user " + c.UserID + " granted client " + r.ClientID + " scopes " + joinScopes(c.Scopes),
			Changes: map[string]any{"userId": c.UserID, "clientId": r.ClientID, "scopes": c.Scopes, "resource": r.Resource}})
	})
	return out, err
}

// DenyOAuthRequest denies a pending request; errors as ApproveOAuthRequest.
func (s *Store) DenyOAuthRequest(ctx context.Context, handleHash string) (OAuthRequest, error) {
	var out OAuthRequest
	err := s.withTx(ctx, func(tx *txn) error {
		r, err := s.decideOAuthRequest(ctx, tx, handleHash, OAuthDenied, "")
		out = r
		if err != nil {
			return err
		}
		return s.insertEvent(ctx, tx, Event{Action: "oauth.consent.deny", Target: r.ClientID,
			Reason:  "authorization request of client " + r.ClientID + " denied",
			Changes: map[string]any{"clientId": r.ClientID, "scopes": r.Scopes, "resource": r.Resource}})
	})
	return out, err
}

// GetOAuthCode returns a code (redeemed or not), or ErrNotFound.
func (s *Store) GetOAuthCode(ctx context.Context, codeHash string) (OAuthCode, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var (
		c                OAuthCode
		scopes           string
		expires, created int64
		used             sql.NullInt64
		grant            sql.NullString
	)
	err := s.r.QueryRowContext(ctx, `SELECT code_hash, client_id, user_id, agent_id, redirect_uri, redirect_param, scopes,
		resource, code_challenge, expires_at, created_at, used_at, grant_id FROM oauth_codes WHERE code_hash = ?`, codeHash).Scan(
		&c.Hash, &c.ClientID, &c.UserID, &c.AgentID, &c.RedirectURI, &c.RedirectParam, &scopes, &c.Resource,
		&c.CodeChallenge, &expires, &created, &used, &grant)
	if errors.Is(err, sql.ErrNoRows) {
		return OAuthCode{}, fmt.Errorf("oauth code: %w", ErrNotFound)
	}
	if err != nil {
		return OAuthCode{}, fmt.Errorf("get oauth code: %w", err)
	}
	c.Scopes = splitScopes(scopes)
	c.ExpiresAt, c.CreatedAt, c.UsedAt, c.GrantID = fromMillis(expires), fromMillis(created), timePtr(used), grant.String
	return c, nil
}

// RedeemOAuthCode marks a code used and creates its grant and first tokens,
// in one transaction. It returns the new grant. A code already redeemed is
// ErrConflict (with the code's grant ID in the returned grant, so the
// caller can revoke it); a missing one ErrNotFound.
func (s *Store) RedeemOAuthCode(ctx context.Context, codeHash string, issue OAuthIssue) (OAuthGrant, error) {
	var g OAuthGrant
	err := s.withTx(ctx, func(tx *txn) error {
		now := s.now()
		if err := s.lockRow(ctx, tx, "oauth_codes", "code_hash", codeHash); err != nil {
			return err
		}
		var (
			scopes string
			used   sql.NullInt64
			grant  sql.NullString
		)
		err := tx.QueryRowContext(ctx, `SELECT client_id, user_id, agent_id, scopes, resource, used_at, grant_id
			FROM oauth_codes WHERE code_hash = ?`, codeHash).Scan(&g.ClientID, &g.UserID, &g.AgentID, &scopes, &g.Resource, &used, &grant)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("oauth code: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("get oauth code: %w", err)
		}
		if used.Valid {
			g.ID = grant.String
			return fmt.Errorf("oauth code already redeemed: %w", ErrConflict)
		}
		g.Scopes = splitScopes(scopes)
		g.ID = s.ids.next("ogr_", now)
		g.CreatedAt = fromMillis(toMillis(now))
		if _, err := tx.ExecContext(ctx, `UPDATE oauth_codes SET used_at = ?, grant_id = ? WHERE code_hash = ?`,
			toMillis(now), g.ID, codeHash); err != nil {
			return fmt.Errorf("redeem oauth code: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_grants (id, client_id, user_id, agent_id, scopes, resource, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, g.ID, g.ClientID, g.UserID, g.AgentID, scopes, g.Resource, toMillis(now)); err != nil {
			return fmt.Errorf("create oauth grant: %w", err)
		}
		return s.insertIssue(ctx, tx, g.ID, issue)
	})
	return g, err
}

func (s *Store) insertIssue(ctx context.Context, tx *txn, grantID string, issue OAuthIssue) error {
	now := toMillis(s.now())
	a := issue.Access
	if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_access_tokens (jti, grant_id, client_id, scopes, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, a.JTI, grantID, a.ClientID, joinScopes(a.Scopes), toMillis(a.ExpiresAt), now); err != nil {
		if s.dialect.isUniqueViolation(err) {
			return fmt.Errorf("store access token: %w", ErrConflict)
		}
		return fmt.Errorf("store access token: %w", err)
	}
	if r := issue.Refresh; r != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_refresh_tokens (token_hash, grant_id, expires_at, created_at)
			VALUES (?, ?, ?, ?)`, r.Hash, grantID, toMillis(r.ExpiresAt), now); err != nil {
			if s.dialect.isUniqueViolation(err) {
				return fmt.Errorf("store refresh token: %w", ErrConflict)
			}
			return fmt.Errorf("store refresh token: %w", err)
		}
	}
	return nil
}

const oauthGrantColumns = `g.id, g.client_id, g.user_id, g.agent_id, g.scopes, g.resource, g.created_at, g.revoked_at`

func scanGrantInto(g *OAuthGrant, scopes *string, created *int64, revoked *sql.NullInt64) []any {
	return []any{&g.ID, &g.ClientID, &g.UserID, &g.AgentID, scopes, &g.Resource, created, revoked}
}

// GetOAuthRefreshToken returns a refresh token and its grant, or
// ErrNotFound. The token's RevokedAt includes its grant's revocation.
func (s *Store) GetOAuthRefreshToken(ctx context.Context, tokenHash string) (OAuthRefreshToken, OAuthGrant, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var (
		t                           OAuthRefreshToken
		g                           OAuthGrant
		scopes                      string
		expires, created, gCreated  int64
		used, revoked, grantRevoked sql.NullInt64
	)
	dest := append([]any{&t.Hash, &t.GrantID, &expires, &created, &used, &revoked},
		scanGrantInto(&g, &scopes, &gCreated, &grantRevoked)...)
	err := s.r.QueryRowContext(ctx, `SELECT t.token_hash, t.grant_id, t.expires_at, t.created_at, t.used_at, t.revoked_at, `+
		oauthGrantColumns+` FROM oauth_refresh_tokens t JOIN oauth_grants g ON g.id = t.grant_id WHERE t.token_hash = ?`,
		tokenHash).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return OAuthRefreshToken{}, OAuthGrant{}, fmt.Errorf("oauth refresh token: %w", ErrNotFound)
	}
	if err != nil {
		return OAuthRefreshToken{}, OAuthGrant{}, fmt.Errorf("get oauth refresh token: %w", err)
	}
	g.Scopes = splitScopes(scopes)
	g.CreatedAt, g.RevokedAt = fromMillis(gCreated), timePtr(grantRevoked)
	t.ExpiresAt, t.CreatedAt, t.UsedAt = fromMillis(expires), fromMillis(created), timePtr(used)
	t.RevokedAt = firstTime(timePtr(revoked), g.RevokedAt)
	return t, g, nil
}

func firstTime(ts ...*time.Time) *time.Time {
	for _, t := range ts {
		if t != nil {
			return t
		}
	}
	return nil
}

// RotateOAuthRefreshToken marks a refresh token used and stores its
// successor and a new access token, in one transaction. A token used,
// revoked or of a revoked grant before is ErrConflict (the caller revokes
// the grant: the token was replayed); a missing one ErrNotFound.
func (s *Store) RotateOAuthRefreshToken(ctx context.Context, oldHash string, issue OAuthIssue) error {
	return s.withTx(ctx, func(tx *txn) error {
		now := s.now()
		if err := s.lockRow(ctx, tx, "oauth_refresh_tokens", "token_hash", oldHash); err != nil {
			return err
		}
		var (
			grantID                     string
			used, revoked, grantRevoked sql.NullInt64
		)
		err := tx.QueryRowContext(ctx, `SELECT t.grant_id, t.used_at, t.revoked_at, g.revoked_at FROM oauth_refresh_tokens t
			JOIN oauth_grants g ON g.id = t.grant_id WHERE t.token_hash = ?`, oldHash).Scan(&grantID, &used, &revoked, &grantRevoked)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("oauth refresh token: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("get oauth refresh token: %w", err)
		}
		if used.Valid || revoked.Valid || grantRevoked.Valid {
			return fmt.Errorf("oauth refresh token no longer usable: %w", ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE oauth_refresh_tokens SET used_at = ? WHERE token_hash = ?`, toMillis(now), oldHash); err != nil {
			return fmt.Errorf("rotate refresh token: %w", err)
		}
		return s.insertIssue(ctx, tx, grantID, issue)
	})
}

// GetOAuthAccessToken returns an access token's record and its grant, or
// ErrNotFound. The token's RevokedAt includes its grant's revocation.
func (s *Store) GetOAuthAccessToken(ctx context.Context, jti string) (OAuthAccessToken, OAuthGrant, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var (
		t                          OAuthAccessToken
		g                          OAuthGrant
		scopes, grantScopes        string
		expires, created, gCreated int64
		revoked, grantRevoked      sql.NullInt64
	)
	dest := append([]any{&t.JTI, &t.GrantID, &t.ClientID, &scopes, &expires, &created, &revoked},
		scanGrantInto(&g, &grantScopes, &gCreated, &grantRevoked)...)
	err := s.r.QueryRowContext(ctx, `SELECT t.jti, t.grant_id, t.client_id, t.scopes, t.expires_at, t.created_at, t.revoked_at, `+
		oauthGrantColumns+` FROM oauth_access_tokens t JOIN oauth_grants g ON g.id = t.grant_id WHERE t.jti = ?`, jti).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return OAuthAccessToken{}, OAuthGrant{}, fmt.Errorf("oauth access token: %w", ErrNotFound)
	}
	if err != nil {
		return OAuthAccessToken{}, OAuthGrant{}, fmt.Errorf("get oauth access token: %w", err)
	}
	g.Scopes = splitScopes(grantScopes)
	g.CreatedAt, g.RevokedAt = fromMillis(gCreated), timePtr(grantRevoked)
	t.Scopes = splitScopes(scopes)
	t.ExpiresAt, t.CreatedAt = fromMillis(expires), fromMillis(created)
	t.RevokedAt = firstTime(timePtr(revoked), g.RevokedAt)
	return t, g, nil
}

// RevokeOAuthAccessToken revokes one access token. Revoking an unknown or
// already revoked token is not an error.
func (s *Store) RevokeOAuthAccessToken(ctx context.Context, jti string) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if _, err := s.w.ExecContext(ctx, `UPDATE oauth_access_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL`,
		toMillis(s.now()), jti); err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	return nil
}

// RevokeOAuthGrant revokes a grant and so every token issued under it.
// Revoking an unknown or already revoked grant is not an error.
func (s *Store) RevokeOAuthGrant(ctx context.Context, grantID string) error {
	return s.withTx(ctx, func(tx *txn) error {
		now := toMillis(s.now())
		if _, err := tx.ExecContext(ctx, `UPDATE oauth_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, now, grantID); err != nil {
			return fmt.Errorf("revoke oauth grant: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE oauth_refresh_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL`, now, grantID); err != nil {
			return fmt.Errorf("revoke oauth grant: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE oauth_access_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL`, now, grantID); err != nil {
			return fmt.Errorf("revoke oauth grant: %w", err)
		}
		return nil
	})
}

func scanOAuthKey(row scanner) (OAuthKey, error) {
	var (
		k       OAuthKey
		created int64
		retired sql.NullInt64
	)
	if err := row.Scan(&k.ID, &k.Alg, &k.PrivateKey, &created, &retired); err != nil {
		return OAuthKey{}, err
	}
	k.CreatedAt, k.RetiredAt = fromMillis(created), timePtr(retired)
	return k, nil
}

const oauthKeyColumns = `kid, alg, private_key, created_at, retired_at`

// lockOAuthKeys serialises key creation and rotation between replicas.
const lockOAuthKeys int32 = 3

// EnsureOAuthKey returns the active signing key of alg, storing candidate
// as the active key if there is none. Replicas starting together agree on
// one key.
func (s *Store) EnsureOAuthKey(ctx context.Context, candidate OAuthKey) (OAuthKey, error) {
	var out OAuthKey
	err := s.withTx(ctx, func(tx *txn) error {
		if err := s.lockKey(ctx, tx, lockOAuthKeys, candidate.Alg); err != nil {
			return err
		}
		k, err := scanOAuthKey(tx.QueryRowContext(ctx, `SELECT `+oauthKeyColumns+` FROM oauth_keys
			WHERE alg = ? AND retired_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1`, candidate.Alg))
		if err == nil {
			out = k
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("get oauth key: %w", err)
		}
		out, err = s.insertOAuthKey(ctx, tx, candidate)
		return err
	})
	return out, err
}

func (s *Store) insertOAuthKey(ctx context.Context, tx *txn, k OAuthKey) (OAuthKey, error) {
	now := s.now()
	k.CreatedAt, k.RetiredAt = fromMillis(toMillis(now)), nil
	_, err := tx.ExecContext(ctx, `INSERT INTO oauth_keys (kid, alg, private_key, created_at) VALUES (?, ?, ?, ?)`,
		k.ID, k.Alg, k.PrivateKey, toMillis(now))
	if s.dialect.isUniqueViolation(err) {
		return OAuthKey{}, fmt.Errorf("store oauth key %s: %w", k.ID, ErrConflict)
	}
	if err != nil {
		return OAuthKey{}, fmt.Errorf("store oauth key: %w", err)
	}
	return k, nil
}

// RotateOAuthKey retires the active keys of k.Alg and makes k the active one.
func (s *Store) RotateOAuthKey(ctx context.Context, k OAuthKey) (OAuthKey, error) {
	var out OAuthKey
	err := s.withTx(ctx, func(tx *txn) error {
		if err := s.lockKey(ctx, tx, lockOAuthKeys, k.Alg); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE oauth_keys SET retired_at = ? WHERE alg = ? AND retired_at IS NULL`,
			toMillis(s.now()), k.Alg); err != nil {
			return fmt.Errorf("retire oauth keys: %w", err)
		}
		var err error
		if out, err = s.insertOAuthKey(ctx, tx, k); err != nil {
			return err
		}
		return s.insertEvent(ctx, tx, Event{Action: "oauth.key.rotate", Target: out.ID,
			Reason: "new " + k.Alg + " signing key for MCP access tokens; earlier keys retired"})
	})
	return out, err
}

// ResealOAuthKey replaces a key's stored private key, from as read to to
// (the same key sealed anew, under the current secret). It reports whether
// it did: false when the row no longer holds from, because another
// replica resealed it first.
func (s *Store) ResealOAuthKey(ctx context.Context, kid, from, to string) (bool, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.w.ExecContext(ctx, `UPDATE oauth_keys SET private_key = ? WHERE kid = ? AND private_key = ?`, to, kid, from)
	if err != nil {
		return false, fmt.Errorf("reseal oauth key %s: %w", kid, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("reseal oauth key %s: %w", kid, err)
	}
	return n == 1, nil
}

// ActiveOAuthKey returns the active signing key of alg, or ErrNotFound.
func (s *Store) ActiveOAuthKey(ctx context.Context, alg string) (OAuthKey, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	k, err := scanOAuthKey(s.r.QueryRowContext(ctx, `SELECT `+oauthKeyColumns+` FROM oauth_keys
		WHERE alg = ? AND retired_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1`, alg))
	if errors.Is(err, sql.ErrNoRows) {
		return OAuthKey{}, fmt.Errorf("oauth key: %w", ErrNotFound)
	}
	if err != nil {
		return OAuthKey{}, fmt.Errorf("get oauth key: %w", err)
	}
	return k, nil
}

// ListOAuthKeys returns the keys of alg that are active or were retired
// after retiredAfter, the active one first, then newest first: the keys
// whose tokens may still be live.
func (s *Store) ListOAuthKeys(ctx context.Context, alg string, retiredAfter time.Time) ([]OAuthKey, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT `+oauthKeyColumns+` FROM oauth_keys
		WHERE alg = ? AND (retired_at IS NULL OR retired_at > ?)
		ORDER BY CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, created_at DESC, kid DESC`, alg, toMillis(retiredAfter))
	if err != nil {
		return nil, fmt.Errorf("list oauth keys: %w", err)
	}
	defer rows.Close()
	var out []OAuthKey
	for rows.Next() {
		k, err := scanOAuthKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list oauth keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list oauth keys: %w", err)
	}
	return out, nil
}

// PurgeOAuth deletes what can no longer be used as of before: expired
// requests, codes and tokens, and grants left with no token.
func (s *Store) PurgeOAuth(ctx context.Context, before time.Time) error {
	return s.withTx(ctx, func(tx *txn) error {
		ms := toMillis(before)
		for _, q := range []string{
			`DELETE FROM oauth_requests WHERE expires_at < ?`,
			// A redeemed code is kept while its grant lives, to recognise a replay.
			`DELETE FROM oauth_codes WHERE expires_at < ? AND (grant_id IS NULL
				OR NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.id = oauth_codes.grant_id))`,
			`DELETE FROM oauth_refresh_tokens WHERE expires_at < ?`,
			`DELETE FROM oauth_access_tokens WHERE expires_at < ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, ms); err != nil {
				return fmt.Errorf("purge oauth: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_grants WHERE created_at < ?
			AND NOT EXISTS (SELECT 1 FROM oauth_refresh_tokens t WHERE t.grant_id = oauth_grants.id)
			AND NOT EXISTS (SELECT 1 FROM oauth_access_tokens a WHERE a.grant_id = oauth_grants.id)`, ms); err != nil {
			return fmt.Errorf("purge oauth: %w", err)
		}
		return nil
	})
}
