package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sealed values are "v1:<key ID>:<base64 of nonce | ciphertext>":
// AES-256-GCM under the key derived for a purpose, a random 96-bit nonce,
// and additional data binding the value to where it is stored (so a sealed
// value copied to another row does not open). The key ID says which secret
// sealed it, so after a rotation Open picks the current or the previous one.
const sealPrefix = "v1:"

// ErrUnknownKey means no given secret has the key ID a value was sealed
// under: the secret that sealed it is missing (KAVACH_SECRET_PREVIOUS
// after a rotation).
var ErrUnknownKey = errors.New("sealed under a secret that is not configured")

// ErrCorrupt means a sealed value is malformed, or does not open under the
// secret its key ID names: it was altered, or moved to another row.
var ErrCorrupt = errors.New("sealed value is corrupt or was altered")

// Sealed reports whether v is in the sealed format (and so not plaintext
// written before values were sealed).
func Sealed(v string) bool { return strings.HasPrefix(v, sealPrefix) }

// SealedKeyID returns the key ID a sealed value names ("" if v is not
// sealed): it says which secret sealed it without revealing it.
func SealedKeyID(v string) string {
	if !Sealed(v) {
		return ""
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(v, sealPrefix), ":")
	return id
}

func (s Secret) aead(purpose string) (cipher.AEAD, string, error) {
	k, err := s.Key(purpose)
	if err != nil {
		return nil, "", err
	}
	id, err := s.KeyID(purpose)
	if err != nil {
		return nil, "", err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, "", err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, "", err
	}
	return g, id, nil
}

// Seal encrypts plaintext with the key derived for purpose, binding aad
// (which Open must be given again).
func (s Secret) Seal(purpose string, plaintext, aad []byte) (string, error) {
	g, id, err := s.aead(purpose)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, g.NonceSize(), g.NonceSize()+len(plaintext)+g.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (Go 1.24+)
	out := g.Seal(nonce, nonce, plaintext, aad)
	return sealPrefix + id + ":" + base64.StdEncoding.EncodeToString(out), nil
}

// Open decrypts a value Seal made for purpose and aad, with whichever of
// secrets (the current one, then the previous) has its key ID. It returns
// the plaintext and that secret's index in secrets. Errors wrap
// ErrUnknownKey or ErrCorrupt and name the key ID, never a secret.
func Open(purpose, sealed string, aad []byte, secrets ...Secret) ([]byte, int, error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	id, body, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || id == "" {
		return nil, -1, ErrCorrupt
	}
	for i, s := range secrets {
		if !s.Set() {
			continue
		}
		g, sid, err := s.aead(purpose)
		if err != nil {
			return nil, -1, err
		}
		if sid != id {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(body)
		if err != nil || len(raw) < g.NonceSize()+g.Overhead() {
			return nil, -1, fmt.Errorf("key ID %s: %w", id, ErrCorrupt)
		}
		pt, err := g.Open(nil, raw[:g.NonceSize()], raw[g.NonceSize():], aad)
		if err != nil {
			return nil, -1, fmt.Errorf("key ID %s: %w", id, ErrCorrupt)
		}
		return pt, i, nil
	}
	return nil, -1, fmt.Errorf("key ID %s: %w", id, ErrUnknownKey)
}
