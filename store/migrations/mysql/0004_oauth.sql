-- The MCP OAuth 2.1 authorization server. Only SHA-256 hashes (hex) of
-- request handles, codes, refresh tokens and client secrets are stored.
-- Scopes are space-separated; redirect_uris and grant_types are JSON arrays.
-- Timestamps are Unix milliseconds (UTC).
CREATE TABLE oauth_clients (
    id            VARCHAR(256) NOT NULL PRIMARY KEY,
    secret_hash   TEXT NOT NULL DEFAULT (''),
    name          TEXT NOT NULL DEFAULT (''),
    redirect_uris MEDIUMTEXT NOT NULL,
    grant_types   TEXT NOT NULL,
    auth_method   VARCHAR(32) NOT NULL CHECK (auth_method IN ('none', 'client_secret_basic', 'client_secret_post')),
    created_at    BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Authorization requests waiting for the app to approve or deny them.
-- redirect_param is the redirect_uri parameter as sent ('' if omitted),
-- redirect_uri the one the answer goes to.
CREATE TABLE oauth_requests (
    handle_hash    VARCHAR(256) NOT NULL PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    redirect_param TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    resource       TEXT NOT NULL,
    state          TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    status         VARCHAR(16) NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    user_id        TEXT NOT NULL DEFAULT (''),
    expires_at     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    decided_at     BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX oauth_requests_expires ON oauth_requests (expires_at);

-- Grants: the family of tokens issued from one authorization code. Revoking
-- a grant revokes every token of the family.
CREATE TABLE oauth_grants (
    id         VARCHAR(256) NOT NULL PRIMARY KEY,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Authorization codes; used_at and grant_id are set when the code is redeemed.
CREATE TABLE oauth_codes (
    code_hash      VARCHAR(256) NOT NULL PRIMARY KEY,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    agent_id       TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    redirect_param TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    resource       TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    used_at        BIGINT,
    grant_id       TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

-- Refresh tokens; used_at is set when one is rotated.
CREATE TABLE oauth_refresh_tokens (
    token_hash VARCHAR(256) NOT NULL PRIMARY KEY,
    grant_id   VARCHAR(256) NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT,
    FOREIGN KEY (grant_id) REFERENCES oauth_grants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_id);
CREATE INDEX oauth_refresh_tokens_expires ON oauth_refresh_tokens (expires_at);

-- Access tokens (JWTs) by jti, so a revocation holds on every replica.
CREATE TABLE oauth_access_tokens (
    jti        VARCHAR(256) NOT NULL PRIMARY KEY,
    grant_id   VARCHAR(256) NOT NULL,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    FOREIGN KEY (grant_id) REFERENCES oauth_grants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX oauth_access_tokens_grant ON oauth_access_tokens (grant_id);
CREATE INDEX oauth_access_tokens_expires ON oauth_access_tokens (expires_at);

-- Signing keys (private key as base64 PKCS#8 DER). The active key has no
-- retired_at; retired keys stay published until their tokens expire.
CREATE TABLE oauth_keys (
    kid         VARCHAR(256) NOT NULL PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
