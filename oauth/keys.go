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

	"github.com/kavach-dev/kavach/secret"
	"github.com/kavach-dev/kavach/store"
)

// keyStorage keeps the ES256 signing keys, shared by every replica.
type keyStorage interface {
	EnsureOAuthKey(ctx context.Context, candidate store.OAuthKey) (store.OAuthKey, error)
	RotateOAuthKey(ctx context.Context, k store.OAuthKey) (store.OAuthKey, error)
	ActiveOAuthKey(ctx context.Context, alg string) (store.OAuthKey, error)
	ListOAuthKeys(ctx context.Context, alg string, retiredAfter time.Time) ([]store.OAuthKey, error)
	ResealOAuthKey(ctx context.Context, kid, from, to string) (bool, error)
}

const algES256 = "ES256"

// ErrNoKeyRotation is returned by RotateKey with an HS256 secret.
var ErrNoKeyRotation = errors.New("oauth: HS256 signing secrets are rotated in the configuration, not by RotateKey")

// keyring signs and verifies access tokens: HS256 with the configured
// signing secret, or ES256 with the store's keys (parsed keys cached by
// kid). The store keeps each private key sealed (AES-256-GCM) with a key
// derived from the top-level secret, bound to its kid and alg.
type keyring struct {
	st      keyStorage
	hmacKey []byte
	// secrets are the current secret (seals) and the previous one (only
	// opens, until the keys it sealed are sealed anew at start).
	secrets [2]secret.Secret
	now     func() time.Time

	mu   sync.Mutex
	priv map[string]*ecdsa.PrivateKey
}

// ErrKeyUnreadable means a signing key in the store does not open with the
// configured secrets: the sidecar must not start.
var ErrKeyUnreadable = errors.New("oauth: a signing key in the database does not open with the configured secret")

func newKeyring(ctx context.Context, st keyStorage, cfg Config, now func() time.Time) (*keyring, error) {
	k := &keyring{st: st, now: now, secrets: [2]secret.Secret{cfg.Secret, cfg.PreviousSecret}, priv: map[string]*ecdsa.PrivateKey{}}
	if cfg.SigningSecret != "" {
		k.hmacKey = []byte(cfg.SigningSecret)
		return k, nil
	}
	candidate, err := k.generate()
	if err != nil {
		return nil, err
	}
	if _, err := st.EnsureOAuthKey(ctx, candidate); err != nil {
		return nil, fmt.Errorf("oauth: signing key: %w", err)
	}
	return k, nil
}

func (k *keyring) alg() string {
	if k.hmacKey != nil {
		return jwt.SigningMethodHS256.Alg()
	}
	return algES256
}

// generate makes a new ES256 key, sealed for the store.
func (k *keyring) generate() (store.OAuthKey, error) {
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
	sealed, err := k.seal(kid, algES256, der)
	if err != nil {
		return store.OAuthKey{}, err
	}
	return store.OAuthKey{ID: kid, Alg: algES256, PrivateKey: sealed}, nil
}

// keyAAD binds a sealed private key to its row: sealed for one kid, it
// does not open as another's.
func keyAAD(kid, alg string) []byte {
	return []byte("kavach oauth signing key\x00" + kid + "\x00" + alg)
}

func (k *keyring) seal(kid, alg string, der []byte) (string, error) {
	sealed, err := k.secrets[0].Seal(secret.KeyEncryption, der, keyAAD(kid, alg))
	if err != nil {
		return "", fmt.Errorf("oauth: seal signing key %s: %w", kid, err)
	}
	return sealed, nil
}

// open returns a stored key's PKCS#8 DER, and whether it needs sealing
// anew under the current secret: it is plaintext (stored before keys were
// sealed) or sealed under the previous secret.
func (k *keyring) open(sk store.OAuthKey) (der []byte, reseal bool, err error) {
	if !secret.Sealed(sk.PrivateKey) {
		der, err := base64.StdEncoding.DecodeString(sk.PrivateKey)
		if err != nil {
			return nil, false, fmt.Errorf("oauth: signing key %s is neither sealed nor base64 DER: %w", sk.ID, ErrKeyUnreadable)
		}
		return der, true, nil
	}
	der, i, err := secret.Open(secret.KeyEncryption, sk.PrivateKey, keyAAD(sk.ID, sk.Alg), k.secrets[:]...)
	switch {
	case errors.Is(err, secret.ErrUnknownKey):
		return nil, false, fmt.Errorf("oauth: signing key %s is sealed under secret key ID %s, which neither secret (KAVACH_SECRET, key ID %s) "+
			"nor previousSecret (KAVACH_SECRET_PREVIOUS) has: give the secret it was sealed with as previousSecret: %w",
			sk.ID, secret.SealedKeyID(sk.PrivateKey), k.currentKeyID(), ErrKeyUnreadable)
	case err != nil:
		return nil, false, fmt.Errorf("oauth: signing key %s does not open under secret key ID %s (altered, or copied from another row): %w",
			sk.ID, secret.SealedKeyID(sk.PrivateKey), ErrKeyUnreadable)
	}
	return der, i != 0, nil
}

// currentKeyID names the current secret's key-encryption key ("none").
func (k *keyring) currentKeyID() string {
	id, err := k.secrets[0].KeyID(secret.KeyEncryption)
	if err != nil {
		return "none"
	}
	return id
}

// reseal reads every ES256 key, retired ones too, and seals under the
// current secret those that are not yet: plaintext rows from before keys
// were sealed, and rows sealed under the previous secret (this is how a
// rotation of the secret completes). It returns how many it resealed. A
// key no configured secret opens is an error wrapping ErrKeyUnreadable.
func (k *keyring) reseal(ctx context.Context) (int, error) {
	keys, err := k.st.ListOAuthKeys(ctx, algES256, time.Time{})
	if err != nil {
		return 0, fmt.Errorf("oauth: list signing keys: %w", err)
	}
	n := 0
	for _, sk := range keys {
		der, stale, err := k.open(sk)
		if err != nil {
			return n, err
		}
		if _, err := k.cache(sk.ID, der); err != nil {
			return n, err
		}
		if !stale {
			continue
		}
		sealed, err := k.seal(sk.ID, sk.Alg, der)
		if err != nil {
			return n, err
		}
		// false: another replica starting too resealed it first.
		done, err := k.st.ResealOAuthKey(ctx, sk.ID, sk.PrivateKey, sealed)
		if err != nil {
			return n, fmt.Errorf("oauth: %w", err)
		}
		if done {
			n++
		}
	}
	return n, nil
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

// parse returns the private key of sk, opening it on first use.
func (k *keyring) parse(sk store.OAuthKey) (*ecdsa.PrivateKey, error) {
	k.mu.Lock()
	p, ok := k.priv[sk.ID]
	k.mu.Unlock()
	if ok {
		return p, nil
	}
	der, _, err := k.open(sk)
	if err != nil {
		return nil, err
	}
	return k.cache(sk.ID, der)
}

// cache parses a key's PKCS#8 DER, checks it is the key kid names, and
// keeps it.
func (k *keyring) cache(kid string, der []byte) (*ecdsa.PrivateKey, error) {
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("oauth: signing key %s: %w", kid, err)
	}
	p, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("oauth: signing key %s is not an ECDSA key", kid)
	}
	if tp, err := thumbprint(&p.PublicKey); err != nil || tp != kid {
		return nil, fmt.Errorf("oauth: signing key %s is not the key its kid names: %w", kid, ErrKeyUnreadable)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.priv[kid] = p
	return p, nil
}

// sign signs claims as an RFC 9068 access token with the active key.
func (k *keyring) sign(ctx context.Context, claims jwt.Claims) (string, error) {
	if k.hmacKey != nil {
		t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		t.Header["typ"] = "at+jwt"
		return t.SignedString(k.hmacKey)
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

// errKeyStore marks a failure to read the signing keys while verifying.
var errKeyStore = errors.New("oauth: load signing keys")

// verifyKey finds the key a token names, reloading from the store for a
// kid it has not seen (a key another replica made).
func (k *keyring) verifyKey(ctx context.Context, t *jwt.Token) (any, error) {
	if k.hmacKey != nil {
		return k.hmacKey, nil
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
	if s.keys.hmacKey != nil {
		return ErrNoKeyRotation
	}
	k, err := s.keys.generate()
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
	if s.keys.hmacKey != nil {
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
