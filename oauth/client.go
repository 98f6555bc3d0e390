package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"unicode"
	"unicode/utf8"

	"github.com/kavach-dev/kavach/store"
)

// clientStorage keeps dynamically registered clients.
type clientStorage interface {
	CreateOAuthClient(ctx context.Context, c store.OAuthClient) (store.OAuthClient, error)
	GetOAuthClient(ctx context.Context, id string) (store.OAuthClient, error)
}

// client returns a pre-registered or registered client; an unknown ID is
// invalid_client.
func (s *Server) client(ctx context.Context, id string) (store.OAuthClient, error) {
	if id == "" {
		return store.OAuthClient{}, errInvalidClient("client_id is required")
	}
	if !vschar(id) {
		// client_id is 1*VSCHAR (RFC 6749 §A.1); other bytes (NUL, invalid
		// UTF-8) would make PostgreSQL fail the lookup with a 500.
		return store.OAuthClient{}, errInvalidClient("unknown client")
	}
	if c, ok := s.clients[id]; ok {
		return c, nil
	}
	c, err := s.st.GetOAuthClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.OAuthClient{}, errInvalidClient("unknown client")
	}
	if err != nil {
		return store.OAuthClient{}, fmt.Errorf("oauth: client: %w", err)
	}
	return c, nil
}

// clientAuthError is invalid_client, asking for Basic when Basic was tried
// (RFC 6749 §5.2).
type clientAuthError struct {
	oe    *Error
	basic bool
}

func (e *clientAuthError) Error() string { return e.oe.Error() }

func (e *clientAuthError) Unwrap() error { return e.oe }

// authenticateClient authenticates the client of a token, revocation or
// introspection request: client_secret_basic, client_secret_post, or
// (public clients) client_id alone. A confidential client must present its
// secret either way.
func (s *Server) authenticateClient(r *http.Request) (store.OAuthClient, error) {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return store.OAuthClient{}, &clientAuthError{errInvalidClient("malformed client credentials"), true}
		}
		if f := r.PostForm.Get("client_id"); f != "" && f != id {
			return store.OAuthClient{}, errInvalidRequest("client_id differs from the authenticated client")
		}
		if r.PostForm.Has("client_secret") {
			return store.OAuthClient{}, errInvalidRequest("use one client authentication method")
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	c, err := s.client(r.Context(), id)
	if err != nil {
		var oe *Error
		if errors.As(err, &oe) {
			return store.OAuthClient{}, &clientAuthError{oe, basic}
		}
		return store.OAuthClient{}, err
	}
	if c.SecretHash == "" {
		if secret != "" {
			return store.OAuthClient{}, &clientAuthError{errInvalidClient("public client sent a secret"), basic}
		}
		return c, nil
	}
	if secret == "" || subtle.ConstantTimeCompare([]byte(hash(secret)), []byte(c.SecretHash)) != 1 {
		return store.OAuthClient{}, &clientAuthError{errInvalidClient("client authentication failed"), basic}
	}
	return c, nil
}

// writeTokenError writes an error of the token, revocation or introspection
// endpoint, with a Basic challenge when Basic credentials failed.
func (s *Server) writeTokenError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *clientAuthError
	if errors.As(err, &ce) {
		if ce.basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="oauth", charset="UTF-8"`)
		}
		err = ce.oe
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	s.writeError(w, r, err)
}

// parseForm reads a form-encoded POST body of at most maxFormBytes.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if ct := r.Header.Get("Content-Type"); !isForm(ct) {
		return errInvalidRequest("the body must be application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		return errInvalidRequest("malformed form body")
	}
	for k, vs := range r.PostForm {
		if len(vs) > 1 {
			return errInvalidRequest("parameter %s is repeated", k)
		}
	}
	return nil
}

const maxFormBytes = 64 << 10

func isForm(ct string) bool {
	const form = "application/x-www-form-urlencoded"
	return len(ct) >= len(form) && equalFoldASCII(ct[:len(form)], form)
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// vschar reports whether s is made of VSCHAR (%x20-7E, RFC 6749 §A).
func vschar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// displayable reports whether s is valid UTF-8 with no control or
// bidirectional formatting characters: safe to store and to show a human.
func displayable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return false
		}
	}
	return true
}
