package secret

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	cur, _ := New(strings.Repeat("c", 32))
	prev, _ := New(strings.Repeat("p", 32))
	other, _ := New(strings.Repeat("o", 32))
	plain := []byte("private key bytes")
	aad := []byte("kid-1")

	sealed, err := cur.Seal(KeyEncryption, plain, aad)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := cur.KeyID(KeyEncryption)
	if !Sealed(sealed) || SealedKeyID(sealed) != id || !strings.HasPrefix(sealed, "v1:"+id+":") {
		t.Fatalf("Seal = %q; want v1:%s:…", sealed, id)
	}
	if again, _ := cur.Seal(KeyEncryption, plain, aad); again == sealed {
		t.Error("Seal twice = the same value; want a fresh nonce each time")
	}
	if got, i, err := Open(KeyEncryption, sealed, aad, cur, prev); err != nil || i != 0 || !bytes.Equal(got, plain) {
		t.Errorf("Open(current) = %q, %d, %v; want the plaintext from secret 0", got, i, err)
	}
	// After a rotation the old secret is the previous one.
	if got, i, err := Open(KeyEncryption, sealed, aad, other, cur); err != nil || i != 1 || !bytes.Equal(got, plain) {
		t.Errorf("Open(previous) = %q, %d, %v; want the plaintext from secret 1", got, i, err)
	}
	if _, _, err := Open(KeyEncryption, sealed, aad, other, Secret{}); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), id) {
		t.Errorf("Open(without its secret) = %v; want ErrUnknownKey naming %s", err, id)
	}
	if _, _, err := Open(KeyEncryption, sealed, []byte("kid-2"), cur); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open(other aad) = %v; want ErrCorrupt", err)
	}
	if _, _, err := Open(AuditCheckpoint, sealed, aad, cur); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Open(other purpose) = %v; want ErrUnknownKey", err)
	}
	tampered := sealed[:len(sealed)-4] + "AAA="
	if _, _, err := Open(KeyEncryption, tampered, aad, cur); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open(tampered) = %v; want ErrCorrupt", err)
	}
	for _, bad := range []string{"", "v1:", "v1::abc", "v1:" + id + ":!!!", "v1:" + id + ":AAAA", "MIGHAgEAMBMGByqGSM49"} {
		if _, _, err := Open(KeyEncryption, bad, aad, cur); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Open(%q) = %v; want ErrCorrupt", bad, err)
		}
	}
	if Sealed("MIGHAgEAMBMGByqGSM49") || SealedKeyID("MIGH") != "" {
		t.Error("base64 DER taken for a sealed value")
	}
	if _, err := (Secret{}).Seal(KeyEncryption, plain, aad); err == nil {
		t.Error("Seal without a secret succeeded")
	}
	if _, _, err := Open(KeyEncryption, sealed, aad, other); err == nil || strings.Contains(err.Error(), "oooo") || strings.Contains(err.Error(), "cccc") {
		t.Errorf("Open(wrong secret) = %v; want an error naming no secret", err)
	}
}
