package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kavach-dev/kavach/store"
)

// keyStorage keeps the ES256 signing keys, shared by every replica.
type keyStorage interface {
	EnsureOAuthKey(ctx context.Context, candidate store.OAuthKey) (store.OAuthKey, error)
	RotateOAuthKey(ctx context.Context, k store.OAuthKey) (store.OAuthKey, error)
	ActiveOAuthKey(ctx context.Context, alg string) (store.OAuthKey, error)
	ListOAuthKeys(ctx context.Context, alg string, retiredAfter time.Time) ([]store.OAuthKey, error)
}

const algES256 = "ES256"

// ErrNoKeyRotation is returned by RotateKey with an HS256 secret.
var ErrNoKeyRotation = errors.New("oauth: HS256 signing secrets are rotated in the configuration, not by RotateKey")

// keyring signs and verifies access tokens: HS256 with the configured
// secret, or ES256 with the store's keys (parsed keys cached by kid).
type keyring struct {
	st     keyStorage
	secret []byte
	now    func() time.Time

	mu   sync.Mutex
	priv map[string]*ecdsa.PrivateKey
}

func newKeyring(ctx context.Context, st keyStorage, secret string, now func() time.Time) (*keyring, error) {
	k := &keyring{st: st, now: now, priv: map[string]*ecdsa.PrivateKey{}}
	if secret != "" {
		k.secret = []byte(secret)
		return k, nil
	}
	candidate, err := generateKey()
	if err != nil {
		return nil, err
	}
	if _, err := st.EnsureOAuthKey(ctx, candidate); err != nil {
		return nil, fmt.Errorf("oauth: signing key: %w", err)
	}
	return k, nil
}

func (k *keyring) alg() string {
	if k.secret != nil {
		return jwt.SigningMethodHS256.Alg()
	}
	return algES256
}

func generateKey() (store.OAuthKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return store.OAuthKey{}, fmt.Errorf("oauth: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.OAuthKey{}, fmt.Errorf("oauth: encode key: %w", err)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return store.OAuthKey{}, err
	}
	return store.OAuthKey{ID: kid, Alg: algES256, PrivateKey: base64.StdEncoding.EncodeToString(der)}, nil
}

// ecPoint returns the P-256 coordinates, 32 bytes each.
func ecPoint(pub *ecdsa.PublicKey) (x, y []byte, err error) {
	b, err := pub.Bytes()
	if err != nil || len(b) != 65 {
		return nil, nil, fmt.Errorf("oauth: encode public key: %w", err)
	}
	return b[1:33], b[33:], nil
}

// thumbprint is the RFC 7638 JWK thumbprint, used as kid.
func thumbprint(pub *ecdsa.PublicKey) (string, error) {
	x, y, err := ecPoint(pub)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + enc.EncodeToString(x) + `","y":"` + enc.EncodeToString(y) + `"}`))
	return enc.EncodeToString(sum[:]), nil
}

func (k *keyring) parse(sk store.OAuthKey) (*ecdsa.PrivateKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if p, ok := k.priv[sk.ID]; ok {
		return p, nil
	}
	der, err := base64.StdEncoding.DecodeString(sk.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("oauth: key %s: %w", sk.ID, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("oauth: key %s: %w", sk.ID, err)
	}
	p, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("oauth: key %s is not an ECDSA key", sk.ID)
	}
	k.priv[sk.ID] = p
	return p, nil
}

// sign signs claims as an RFC 9068 access token with the active key.
func (k *keyring) sign(ctx context.Context, claims jwt.Claims) (string, error) {
	if k.secret != nil {
		t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		t.Header["typ"] = "at+jwt"
		return t.SignedString(k.secret)
	}
	// Read the active key each time: another replica may have rotated it.
	sk, err := k.st.ActiveOAuthKey(ctx, algES256)
	if err != nil {
		return "", fmt.Errorf("oauth: signing key: %w", err)
	}
	priv, err := k.parse(sk)
	if err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["typ"] = "at+jwt"
	t.Header["kid"] = sk.ID
	return t.SignedString(priv)
}

// verifyKey finds the key a token names, reloading from the store for a
// kid it has not seen (a key another replica made).
// errKeyStore marks a failure to read the signing keys while verifying.
var errKeyStore = errors.New("oauth: load signing keys")

func (k *keyring) verifyKey(ctx context.Context, t *jwt.Token) (any, error) {
	if k.secret != nil {
		return k.secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("token has no kid")
	}
	k.mu.Lock()
	p, ok := k.priv[kid]
	k.mu.Unlock()
	if ok {
		return &p.PublicKey, nil
	}
	keys, err := k.st.ListOAuthKeys(ctx, algES256, time.Time{})
	if err != nil {
		// Our fault, not the token's: Verify answers it as a server error.
		return nil, fmt.Errorf("%w: %w", errKeyStore, err)
	}
	for _, sk := range keys {
		if sk.ID == kid {
			p, err := k.parse(sk)
			if err != nil {
				return nil, err
			}
			return &p.PublicKey, nil
		}
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

// RotateKey makes a new ES256 signing key active. The previous keys stay
// published at jwks_uri until the tokens they signed have expired.
func (s *Server) RotateKey(ctx context.Context) error {
	if s.keys.secret != nil {
		return ErrNoKeyRotation
	}
	k, err := generateKey()
	if err != nil {
		return err
	}
	if _, err := s.st.RotateOAuthKey(ctx, k); err != nil {
		return fmt.Errorf("oauth: rotate key: %w", err)
	}
	return nil
}

// JWK is one public key of the key set.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// JWKS returns the public keys whose tokens may still be live (none with
// HS256).
func (s *Server) JWKS(ctx context.Context) ([]JWK, error) {
	out := []JWK{}
	if s.keys.secret != nil {
		return out, nil
	}
	keys, err := s.st.ListOAuthKeys(ctx, algES256, s.now().Add(-s.cfg.AccessTokenTTL))
	if err != nil {
		return nil, fmt.Errorf("oauth: list keys: %w", err)
	}
	for _, sk := range keys {
		p, err := s.keys.parse(sk)
		if err != nil {
			return nil, err
		}
		x, y, err := ecPoint(&p.PublicKey)
		if err != nil {
			return nil, err
		}
		enc := base64.RawURLEncoding
		out = append(out, JWK{Kty: "EC", Crv: "P-256", X: enc.EncodeToString(x), Y: enc.EncodeToString(y), Use: "sig", Alg: algES256, Kid: sk.ID})
	}
	return out, nil
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	keys, err := s.JWKS(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}
