// Package secret derives the keys Kavach needs from the operator's one
// top-level secret (config `secret`, KAVACH_SECRET): the key that signs
// audit checkpoints, the key that encrypts private keys at rest, and any
// later purpose. Each purpose gets its own key (HKDF-SHA256 with the
// purpose as info), so a key leaked for one job does nothing for another.
package secret

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// MinLength is the shortest secret accepted, in bytes.
const MinLength = 32

// Purposes of derived keys. A purpose string never changes once released:
// changing it changes every key derived for it.
const (
	// AuditCheckpoint signs audit checkpoints (HMAC-SHA256).
	AuditCheckpoint = "kavach audit checkpoint v1"
	// KeyEncryption encrypts private signing keys at rest (AES-256-GCM).
	KeyEncryption = "kavach key encryption v1"
)

// Secret is the operator's secret. The zero value is "no secret".
type Secret struct {
	raw []byte
}

// New checks s and returns it as a Secret; "" is no secret (Set false).
func New(s string) (Secret, error) {
	if s == "" {
		return Secret{}, nil
	}
	if len(s) < MinLength {
		return Secret{}, fmt.Errorf("the secret is %d characters; at least %d are required", len(s), MinLength)
	}
	return Secret{raw: []byte(s)}, nil
}

// Set reports whether there is a secret.
func (s Secret) Set() bool { return len(s.raw) > 0 }

// Key derives the 32-byte key for purpose. Without a secret it fails.
func (s Secret) Key(purpose string) ([]byte, error) {
	if !s.Set() {
		return nil, errors.New("no secret is set (config secret, KAVACH_SECRET)")
	}
	return hkdf.Key(sha256.New, s.raw, nil, purpose, 32)
}

// KeyID names the key derived for purpose without revealing it: the first
// 8 bytes (hex) of an HMAC of a fixed label. Stored beside what the key
// signed or encrypted, it says which secret to use after a rotation.
func (s Secret) KeyID(purpose string) (string, error) {
	k, err := s.Key(purpose)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte("kavach key id"))
	return hex.EncodeToString(m.Sum(nil)[:8]), nil
}

// String never shows the secret, so one logged by mistake leaks nothing.
func (s Secret) String() string {
	if s.Set() {
		return "[secret]"
	}
	return "[no secret]"
}

// GoString hides the secret from %#v too.
func (s Secret) GoString() string { return s.String() }
