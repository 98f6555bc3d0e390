package core

import (
	"strings"
	"testing"

	"github.com/kavach-dev/kavach/internal/kavachostest"
)

// Tokens KavachOS issued ("kv_" and 32 random bytes in unpadded base64url,
// stored as the SHA-256 hex of the token) have the shape of Kavach's own:
// an imported token is checked and hashed as is.
func TestWellFormedToken(t *testing.T) {
	own, ownHash := NewToken()
	foreign, foreignHash := kavachostest.NewToken()
	for _, c := range []struct {
		token string
		want  bool
	}{
		{own, true},
		{foreign, true},
		{foreign[:len(foreign)-1], false},
		{foreign + "A", false},
		{"kv_" + strings.Repeat("A", 42) + "B", false}, // not canonical: the last character's low bits are set
		{"kx_" + foreign[3:], false},
		{strings.Replace(foreign, foreign[10:11], "+", 1), false},
	} {
		if got := WellFormedToken(c.token); got != c.want {
			t.Errorf("WellFormedToken(%q) = %v; want %v", c.token, got, c.want)
		}
	}
	if HashToken(own) != ownHash || HashToken(foreign) != foreignHash {
		t.Errorf("HashToken differs from the hash stored at issue")
	}
}
