package secret

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestKeysDifferByPurposeAndSecret(t *testing.T) {
	a, err := New(strings.Repeat("a", 32))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(strings.Repeat("b", 32))
	ka1, _ := a.Key(AuditCheckpoint)
	ka2, _ := a.Key(KeyEncryption)
	kb1, _ := b.Key(AuditCheckpoint)
	again, _ := a.Key(AuditCheckpoint)
	if len(ka1) != 32 || bytes.Equal(ka1, ka2) || bytes.Equal(ka1, kb1) || !bytes.Equal(ka1, again) {
		t.Fatalf("keys: %x %x %x %x", ka1, ka2, kb1, again)
	}
	ida, _ := a.KeyID(AuditCheckpoint)
	idb, _ := b.KeyID(AuditCheckpoint)
	if len(ida) != 16 || ida == idb {
		t.Fatalf("key ids %q %q", ida, idb)
	}
}

func TestShortOrMissingSecret(t *testing.T) {
	if _, err := New(strings.Repeat("x", 31)); err == nil || strings.Contains(err.Error(), "xxx") {
		t.Fatalf("short secret: %v", err)
	}
	none, err := New("")
	if err != nil || none.Set() {
		t.Fatalf("empty: %v %v", none, err)
	}
	if _, err := none.Key(AuditCheckpoint); err == nil {
		t.Fatal("a key without a secret")
	}
}

func TestNeverPrinted(t *testing.T) {
	s, _ := New("correct horse battery staple 0123456789")
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		if strings.Contains(out, "horse") {
			t.Fatalf("printed: %s", out)
		}
	}
}
