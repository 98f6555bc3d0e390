-- An access token's own scopes: a refresh may narrow them below its
-- grant's. Verification takes a token's agent, subject, scopes and
-- audience from its record, never from the token, so a token re-signed
-- with other claims is refused. Tokens issued before this migration get
-- their grant's scopes (one narrowed by a refresh is then refused, and
-- its client refreshes again).
ALTER TABLE oauth_access_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT ('');
UPDATE oauth_access_tokens SET scopes = COALESCE(
    (SELECT g.scopes FROM oauth_grants g WHERE g.id = oauth_access_tokens.grant_id), '');

-- oauth_keys.private_key now holds the key sealed with a key derived from
-- the top-level secret ("v1:<key ID>:<base64 of nonce | AES-256-GCM
-- ciphertext>", the kid and alg as additional data). Rows written before
-- (base64 PKCS#8 DER) are sealed by the sidecar at its next start.
