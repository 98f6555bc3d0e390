package core

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// TokenPrefix marks Kavach agent tokens, so scanners can spot leaked ones.
const TokenPrefix = "kv_"

// tokenLen is "kv_" plus 32 bytes in unpadded base64url (43 characters).
const tokenLen = len(TokenPrefix) + 43

// NewToken returns a fresh token and the hash that is stored instead.
func NewToken() (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token)
}

// HashToken is the SHA-256 (hex) of a token or key: what is stored and looked up.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// WellFormedToken reports whether s has the shape of a Kavach token.
func WellFormedToken(s string) bool {
	if len(s) != tokenLen || !strings.HasPrefix(s, TokenPrefix) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(TokenPrefix):])
	return err == nil && len(b) == 32
}

// IsAccessToken tells a JWT from a Kavach agent token (kv_…).
func IsAccessToken(bearer string) bool {
	return !strings.HasPrefix(bearer, TokenPrefix) && strings.Count(bearer, ".") == 2
}
