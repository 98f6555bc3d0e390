package oauth

import (
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/internal/mysqltest"
	"github.com/kavach-dev/kavach/secret"
)

// storedKeys reads oauth_keys.private_key by kid straight from the
// database at storeURL, past the store.
func storedKeys(t *testing.T, storeURL string) map[string]string {
	t.Helper()
	const q = `SELECT kid, private_key FROM oauth_keys`
	out := map[string]string{}
	driver, dsn := "sqlite", storeURL
	switch {
	case strings.HasPrefix(storeURL, "postgres://"):
		driver = "pgx"
	case strings.HasPrefix(storeURL, "mysql://"):
		driver, dsn = "mysql", mysqltest.DSN(t, storeURL)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var kid, pk string
		if err := rows.Scan(&kid, &pk); err != nil {
			t.Fatal(err)
		}
		out[kid] = pk
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKeysSealedAtRest: the database holds no private key in the clear:
// each row is sealed under the secret's key ID, holds neither the key's
// DER nor its base64, and does not decode to a PKCS#8 key.
func TestKeysSealedAtRest(t *testing.T) {
	t.Parallel()
	for _, backend := range storeBackends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			storeURL := storeURLOn(t, backend)
			h := newHarnessOn(t, storeURL, "", nil)
			if err := h.srv.RotateKey(t.Context()); err != nil { // a retired key and an active one
				t.Fatal(err)
			}
			rows := storedKeys(t, storeURL)
			if len(rows) != 2 {
				t.Fatalf("oauth_keys = %d rows; want 2", len(rows))
			}
			keyID, _ := mustSecret(t, testSecret).KeyID(secret.KeyEncryption)
			for kid, stored := range rows {
				der, err := x509.MarshalPKCS8PrivateKey(h.privateKeyOf(kid))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(stored, "v1:"+keyID+":") {
					t.Errorf("key %s stored as %.20q…; want v1:%s:…", kid, stored, keyID)
				}
				if strings.Contains(stored, base64.StdEncoding.EncodeToString(der)) || strings.Contains(stored, string(der)) {
					t.Errorf("key %s: the stored value holds the plain DER", kid)
				}
				for _, part := range append([]string{stored}, strings.Split(stored, ":")...) {
					if raw, err := base64.StdEncoding.DecodeString(part); err == nil {
						if _, err := x509.ParsePKCS8PrivateKey(raw); err == nil {
							t.Errorf("key %s: %.20q… decodes to a PKCS#8 key", kid, part)
						}
					}
				}
			}
		})
	}
}

// TestPlaintextKeysSealedAtStart: keys stored before keys were sealed
// (base64 DER) are sealed at the next start, and tokens they signed still
// verify.
func TestPlaintextKeysSealedAtStart(t *testing.T) {
	t.Parallel()
	storeURL := filepath.Join(t.TempDir(), "kavach.db")
	h := newHarnessOn(t, storeURL, "", nil)
	at := str(h.tokens("pre-public", redirectCB, "tools:read"), "access_token")
	kid := kidOf(at)
	der, err := x509.MarshalPKCS8PrivateKey(h.privateKeyOf(kid))
	if err != nil {
		t.Fatal(err)
	}
	// As the release before wrote it.
	plain := base64.StdEncoding.EncodeToString(der)
	if ok, err := h.st.ResealOAuthKey(t.Context(), kid, storedKeys(t, storeURL)[kid], plain); err != nil || !ok {
		t.Fatalf("store the key in plaintext = %v, %v", ok, err)
	}

	s, err := New(t.Context(), h.srv.Config(), h.st, h.agents, Options{Now: h.clock.Now})
	if err != nil {
		t.Fatalf("New over a plaintext key = %v", err)
	}
	stored := storedKeys(t, storeURL)[kid]
	if !secret.Sealed(stored) || strings.Contains(stored, plain) {
		t.Errorf("key after start = %.20q…; want it sealed", stored)
	}
	if _, err := s.Verify(t.Context(), at, testResource, nil); err != nil {
		t.Errorf("Verify(token of the resealed key) = %v", err)
	}
	// A second start leaves a sealed key as it is.
	if _, err := New(t.Context(), h.srv.Config(), h.st, h.agents, Options{Now: h.clock.Now}); err != nil {
		t.Fatal(err)
	}
	if again := storedKeys(t, storeURL)[kid]; again != stored {
		t.Error("a second start sealed the key again; want it left alone")
	}
}

// TestSecretRotation is the documented procedure: start with the new
// secret and the old one as previous; every key, retired ones too, is
// sealed anew under the new secret; then the previous secret can go. A
// start with neither secret is refused, naming the key, never a secret.
func TestSecretRotation(t *testing.T) {
	t.Parallel()
	const oldSecret, newSecret, wrongSecret = testSecret, "the new secret, rotated in, 32+ characters", "not the secret that sealed these keys!!"
	storeURL := filepath.Join(t.TempDir(), "kavach.db")
	h := newHarnessOn(t, storeURL, "", nil)
	before := str(h.tokens("pre-public", redirectCB, "tools:read"), "access_token")
	if err := h.srv.RotateKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	after := str(h.tokens("pre-public", redirectCB, "tools:read"), "access_token")
	start := func(current, previous string) (*Server, error) {
		cfg := h.srv.Config()
		cfg.Secret, cfg.PreviousSecret = mustSecret(t, current), secret.Secret{}
		if previous != "" {
			cfg.PreviousSecret = mustSecret(t, previous)
		}
		return New(t.Context(), cfg, h.st, h.agents, Options{Now: h.clock.Now})
	}
	oldID, _ := mustSecret(t, oldSecret).KeyID(secret.KeyEncryption)
	newID, _ := mustSecret(t, newSecret).KeyID(secret.KeyEncryption)

	// The new secret alone cannot open the keys: refused, with the key and
	// the key ID it needs named, never a secret.
	_, err := start(newSecret, "")
	if !errors.Is(err, ErrKeyUnreadable) || !strings.Contains(err.Error(), oldID) || !strings.Contains(err.Error(), "KAVACH_SECRET_PREVIOUS") ||
		(!strings.Contains(err.Error(), kidOf(before)) && !strings.Contains(err.Error(), kidOf(after))) {
		t.Errorf("New(new secret alone) = %v; want ErrKeyUnreadable naming a kid and key ID %s", err, oldID)
	}
	for _, s := range []string{oldSecret, newSecret} {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("the error shows a secret: %v", err)
		}
	}

	s, err := start(newSecret, oldSecret)
	if err != nil {
		t.Fatalf("New(new secret, old as previous) = %v", err)
	}
	for kid, stored := range storedKeys(t, storeURL) {
		if secret.SealedKeyID(stored) != newID {
			t.Errorf("key %s sealed under %q after the rotation; want %s", kid, secret.SealedKeyID(stored), newID)
		}
	}
	for _, tok := range []string{before, after} {
		if _, err := s.Verify(t.Context(), tok, testResource, nil); err != nil {
			t.Errorf("Verify(token signed before the rotation) = %v", err)
		}
	}
	// Done: the previous secret can go.
	s, err = start(newSecret, "")
	if err != nil {
		t.Fatalf("New(new secret alone, after the rotation) = %v", err)
	}
	if _, err := s.Verify(t.Context(), after, testResource, nil); err != nil {
		t.Errorf("Verify after dropping the previous secret = %v", err)
	}
	// A replica not yet restarted keeps the keys it opened at its start.
	if _, err := s.Verify(t.Context(), str(h.tokens("pre-public", redirectCB, "tools:read"), "access_token"), testResource, nil); err != nil {
		t.Errorf("Verify(token of a replica still on the old secret) = %v", err)
	}
	noSecret := h.srv.Config()
	noSecret.Secret = secret.Secret{}
	if _, err := New(t.Context(), noSecret, h.st, h.agents, Options{}); err == nil || !strings.Contains(err.Error(), "secret is required") {
		t.Errorf("New(no secret) = %v; want refused", err)
	}
	if _, err := start(wrongSecret, oldSecret); !errors.Is(err, ErrKeyUnreadable) || !strings.Contains(err.Error(), newID) {
		t.Errorf("New(wrong secrets) = %v; want ErrKeyUnreadable naming key ID %s", err, newID)
	}
}

// TestSealedKeyBoundToItsRow: a sealed key copied over another's row does
// not open (the kid is sealed with it), nor does an altered one.
func TestSealedKeyBoundToItsRow(t *testing.T) {
	t.Parallel()
	storeURL := filepath.Join(t.TempDir(), "kavach.db")
	h := newHarnessOn(t, storeURL, "", nil)
	if err := h.srv.RotateKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	keys, err := h.st.ListOAuthKeys(t.Context(), algES256, time.Time{})
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListOAuthKeys = %v, %v", keys, err)
	}
	active, retired := keys[0], keys[1]
	for name, value := range map[string]string{
		"the active key's": active.PrivateKey,
		"an altered value": retired.PrivateKey[:len(retired.PrivateKey)-6] + "AAAAA=",
	} {
		if ok, err := h.st.ResealOAuthKey(t.Context(), retired.ID, retired.PrivateKey, value); err != nil || !ok {
			t.Fatal(ok, err)
		}
		_, err := New(t.Context(), h.srv.Config(), h.st, h.agents, Options{Now: h.clock.Now})
		if !errors.Is(err, ErrKeyUnreadable) || !strings.Contains(err.Error(), retired.ID) {
			t.Errorf("New with %s value in key %s's row = %v; want ErrKeyUnreadable naming it", name, retired.ID, err)
		}
		if _, err := h.st.ResealOAuthKey(t.Context(), retired.ID, value, retired.PrivateKey); err != nil {
			t.Fatal(err)
		}
	}
}
