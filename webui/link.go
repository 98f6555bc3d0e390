package webui

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kavach-dev/kavach/secret"
)

// linkPurpose derives the approval links' key from the configured secret:
// a key of its own, so a link's signature says nothing of any other key.
const linkPurpose = "kavach approval link v1"

// ApprovePath is where an approval's signed link points, below the base
// URL: ApprovePath + "{id}/{signature}".
const ApprovePath = "/ui/approve/"

// Links signs and checks approval links. A link binds the approval's ID,
// its owner and its expiry under an HMAC-SHA256 key derived from the
// secret; it is worth something only while the approval is pending and
// unexpired, which the page checks in the database on every use. The
// zero Links (no secret) signs nothing: approvals then have no url.
type Links struct {
	// base is server.publicUrl, or the listener's address once bound
	// (SetDefaultBase) when it is not configured.
	base       atomic.Pointer[string]
	configured bool
	// keys are the current secret's key, then the previous one's, which
	// still verifies links sent before a rotation.
	keys [][]byte
}

// NewLinks returns the signer of links under base (server.publicUrl, an
// http(s) URL). Without a current secret it returns a Links that signs
// nothing.
func NewLinks(base string, current, previous secret.Secret) (*Links, error) {
	l := &Links{configured: base != ""}
	b := strings.TrimRight(base, "/")
	l.base.Store(&b)
	for _, s := range []secret.Secret{current, previous} {
		if !s.Set() {
			continue
		}
		k, err := s.Key(linkPurpose)
		if err != nil {
			return nil, err
		}
		l.keys = append(l.keys, k)
	}
	if !current.Set() {
		l.keys = nil
	}
	return l, nil
}

// Enabled reports whether links are signed (a secret is set).
func (l *Links) Enabled() bool { return l != nil && len(l.keys) > 0 }

// Base is the URL humans reach the pages at.
func (l *Links) Base() string {
	if l == nil {
		return ""
	}
	if b := l.base.Load(); b != nil {
		return *b
	}
	return ""
}

// SetDefaultBase sets the base from the address the pages' listener
// bound, when server.publicUrl did not set one: an unspecified host
// (0.0.0.0, [::]) becomes localhost.
func (l *Links) SetDefaultBase(scheme string, addr net.Addr) {
	if l == nil || l.configured || addr == nil || addr.Network() != "tcp" {
		return
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	b := scheme + "://" + net.JoinHostPort(host, port)
	l.base.Store(&b)
}

// URL is the signed link of an approval; "" when links are off, or when
// no base is known (a Unix socket, without server.publicUrl).
func (l *Links) URL(id, owner string, expires time.Time) string {
	if !l.Enabled() || l.Base() == "" {
		return ""
	}
	return l.Base() + ApprovePath + url.PathEscape(id) + "/" + sign(l.keys[0], id, owner, expires)
}

// Valid reports whether sig is the signature of the approval under the
// current or the previous secret, in constant time.
func (l *Links) Valid(id, owner string, expires time.Time, sig string) bool {
	if !l.Enabled() || sig == "" {
		return false
	}
	ok := false
	for _, k := range l.keys {
		if hmac.Equal([]byte(sign(k, id, owner, expires)), []byte(sig)) {
			ok = true
		}
	}
	return ok
}

// sign is the base64url HMAC of the approval's ID, owner and expiry (in
// milliseconds, as stored), length-prefixed so no two triples collide.
func sign(key []byte, id, owner string, expires time.Time) string {
	m := hmac.New(sha256.New, key)
	for _, part := range []string{"approval-link", id, owner, strconv.FormatInt(expires.UnixMilli(), 10)} {
		fmt.Fprintf(m, "%d:%s", len(part), part)
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
