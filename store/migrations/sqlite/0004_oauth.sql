-- The MCP OAuth 2.1 authorization server. Only SHA-256 hashes (hex) of
-- request handles, codes, refresh tokens and client secrets are stored.
-- Scopes are space-separated; redirect_uris and grant_types are JSON arrays.
-- Timestamps are Unix milliseconds (UTC).
CREATE TABLE oauth_clients (
    id            TEXT PRIMARY KEY,
    secret_hash   TEXT NOT NULL DEFAULT '',
    name          TEXT NOT NULL DEFAULT '',
    redirect_uris TEXT NOT NULL,
    grant_types   TEXT NOT NULL,
    auth_method   TEXT NOT NULL CHECK (auth_method IN ('none', 'client_secret_basic', 'client_secret_post')),
    created_at    INTEGER NOT NULL
);

-- Authorization requests waiting for the app to approve or deny them.
-- redirect_param is the redirect_uri parameter as sent ('' if omitted),
-- redirect_uri the one the answer goes to.
CREATE TABLE oauth_requests (
    handle_hash    TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    redirect_param TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    resource       TEXT NOT NULL,
    state          TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    user_id        TEXT NOT NULL DEFAULT '',
    expires_at     INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    decided_at     INTEGER
);
CREATE INDEX oauth_requests_expires ON oauth_requests (expires_at);

-- Grants: the family of tokens issued from one authorization code. Revoking
-- a grant revokes every token of the family.
CREATE TABLE oauth_grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Authorization codes; used_at and grant_id are set when the code is redeemed.
CREATE TABLE oauth_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    agent_id       TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    redirect_param TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    resource       TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    used_at        INTEGER,
    grant_id       TEXT
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

-- Refresh tokens; used_at is set when one is rotated.
CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
);
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_id);
CREATE INDEX oauth_refresh_tokens_expires ON oauth_refresh_tokens (expires_at);

-- Access tokens (JWTs) by jti, so a revocation holds on every replica.
CREATE TABLE oauth_access_tokens (
    jti        TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX oauth_access_tokens_grant ON oauth_access_tokens (grant_id);
CREATE INDEX oauth_access_tokens_expires ON oauth_access_tokens (expires_at);

-- Signing keys (private key as base64 PKCS#8 DER). The active key has no
-- retired_at; retired keys stay published until their tokens expire.
CREATE TABLE oauth_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
