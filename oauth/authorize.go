package oauth

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/kavach-dev/kavach/store"
)

// requestStorage keeps authorization requests until the app decides them,
// and the codes of approved ones.
type requestStorage interface {
	CreateOAuthRequest(ctx context.Context, r store.OAuthRequest) error
	GetOAuthRequest(ctx context.Context, handleHash string) (store.OAuthRequest, error)
	ApproveOAuthRequest(ctx context.Context, handleHash string, c store.OAuthCode) (store.OAuthRequest, error)
	DenyOAuthRequest(ctx context.Context, handleHash string) (store.OAuthRequest, error)
}

// authorizeError is an authorization endpoint error: redirected to the
// client when its redirect URI is trusted, else shown on a 400 page.
type authorizeError struct {
	oe       *Error
	redirect string // "" means: do not redirect
	state    string
}

func (e *authorizeError) Error() string { return e.oe.Error() }

func (e *authorizeError) Unwrap() error { return e.oe }

func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	next, err := s.authorize(r.Context(), r.URL.Query())
	if err == nil {
		http.Redirect(w, r, next, http.StatusFound) //nolint:gosec // G710: next is the operator-configured login/consent page plus an escaped request handle
		return
	}
	var ae *authorizeError
	if !errors.As(err, &ae) {
		ae = &authorizeError{oe: asError(err)}
	}
	if ae.oe.Status >= 500 {
		s.log.ErrorContext(r.Context(), "oauth authorize failed", "err", err)
	}
	if ae.redirect == "" {
		writeErrorPage(w, ae.oe)
		return
	}
	http.Redirect(w, r, s.errorRedirect(ae.redirect, ae.oe.Code, ae.oe.Description, ae.state), http.StatusFound)
}

// maxStateLen bounds the state a pending request stores; clients send an
// opaque value of a few dozen characters.
const maxStateLen = 1024

// errorRedirect is the client's redirect URI with an error, state and iss.
func (s *Server) errorRedirect(redirect, code, description, state string) string {
	return withParams(redirect, url.Values{"error": {code}, "error_description": {description}, "state": {state}, "iss": {s.cfg.Issuer}})
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorization error</title></head>
<body><h1>Authorization error</h1><p>{{.Code}}: {{.Description}}</p>
<p>The application that sent you here is misconfigured; you can close this page.</p></body></html>
`))

func writeErrorPage(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	status := e.Status
	if status < 500 {
		status = http.StatusBadRequest
	}
	w.WriteHeader(status)
	_ = errorPage.Execute(w, e)
}

// authorize validates an authorization request, stores it pending and
// returns where to send the browser: the app's login (or consent) page
// with ?request=<handle>.
func (s *Server) authorize(ctx context.Context, q url.Values) (string, error) {
	for k, vs := range q {
		if len(vs) > 1 {
			return "", &authorizeError{oe: errInvalidRequest("parameter %s is repeated", k)}
		}
	}
	// Errors that must not redirect: the client and its redirect URI.
	c, err := s.client(ctx, q.Get("client_id"))
	if err != nil {
		var oe *Error
		if errors.As(err, &oe) {
			oe = &Error{Code: oe.Code, Description: oe.Description, Status: http.StatusBadRequest}
			return "", &authorizeError{oe: oe}
		}
		return "", err
	}
	param := q.Get("redirect_uri")
	redirect := param
	switch {
	case param == "" && len(c.RedirectURIs) == 1:
		redirect = c.RedirectURIs[0]
	case param == "":
		return "", &authorizeError{oe: errInvalidRequest("redirect_uri is required: the client has several")}
	case !matchRedirect(c.RedirectURIs, param):
		return "", &authorizeError{oe: errInvalidRequest("redirect_uri is not registered for this client")}
	}
	state := q.Get("state")
	fail := func(e *Error) error { return &authorizeError{oe: e, redirect: redirect, state: state} }
	if !displayable(state) {
		// Not echoed: it is not a state the client could have sent.
		return "", &authorizeError{oe: errInvalidRequest("state has control characters or invalid UTF-8"), redirect: redirect}
	}
	if len(state) > maxStateLen {
		// Stored with the pending request, which anyone may open: bounded.
		return "", &authorizeError{oe: errInvalidRequest("state is longer than %d bytes", maxStateLen), redirect: redirect}
	}

	if rt := q.Get("response_type"); rt == "" {
		return "", fail(errInvalidRequest("response_type is required"))
	} else if rt != "code" {
		return "", fail(oauthErr(http.StatusBadRequest, CodeUnsupportedResponseType, "response_type must be code"))
	}
	if !contains(c.GrantTypes, GrantAuthorizationCode) {
		return "", fail(oauthErr(http.StatusBadRequest, CodeUnauthorizedClient, "the client may not use the authorization code grant"))
	}
	if q.Get("request") != "" || q.Get("request_uri") != "" {
		return "", fail(errInvalidRequest("request objects are not supported"))
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "":
		return "", fail(errInvalidRequest("code_challenge is required (PKCE S256)"))
	case method != "S256":
		return "", fail(errInvalidRequest("code_challenge_method must be S256"))
	case !validChallenge(challenge):
		return "", fail(errInvalidRequest("code_challenge must be a base64url SHA-256 (43 characters)"))
	}
	scopes, err := s.requestedScopes(c, q.Get("scope"))
	if err != nil {
		return "", fail(asError(err))
	}
	resource, err := s.resource(q.Get("resource"), "")
	if err != nil {
		return "", fail(asError(err))
	}
	handle := randomToken()
	err = s.st.CreateOAuthRequest(ctx, store.OAuthRequest{
		HandleHash: hash(handle), ClientID: c.ID, RedirectURI: redirect, RedirectParam: param, Scopes: scopes,
		Resource: resource, State: state, CodeChallenge: challenge, ExpiresAt: s.now().Add(s.cfg.RequestTTL),
	})
	if err != nil {
		return "", fail(&Error{Code: CodeServerError, Description: "internal error", Status: http.StatusInternalServerError,
			Err: fmt.Errorf("oauth: store request: %w", err)})
	}
	page := s.cfg.LoginPage
	if page == "" {
		page = s.cfg.ConsentPage
	}
	sep := "?"
	if strings.Contains(page, "?") {
		sep = "&"
	}
	return page + sep + "request=" + url.QueryEscape(handle), nil
}

// requestedScopes validates the scope parameter against what client c may
// ask for; omitted, it means the client's scopes if it has some, else
// every configured scope (not offline_access).
func (s *Server) requestedScopes(c store.OAuthClient, scope string) ([]string, error) {
	if strings.TrimSpace(scope) == "" {
		if len(c.Scopes) > 0 {
			return slices.Clone(c.Scopes), nil
		}
		out := []string{}
		for _, name := range s.cfg.scopesSupported() {
			if name != ScopeOfflineAccess {
				out = append(out, name)
			}
		}
		return out, nil
	}
	scopes := spaceList(scope)
	supported := s.cfg.scopesSupported()
	for _, sc := range scopes {
		if !contains(supported, sc) {
			return nil, oauthErr(http.StatusBadRequest, CodeInvalidScope, "unknown scope %q", sc)
		}
		if len(c.Scopes) > 0 && !contains(c.Scopes, sc) {
			return nil, oauthErr(http.StatusBadRequest, CodeInvalidScope, "the client may not ask for scope %q", sc)
		}
	}
	return scopes, nil
}

// resource validates an RFC 8707 resource parameter against the allowed
// resources. Empty means bound (the grant's, on refresh), else the only
// allowed resource when there is exactly one.
func (s *Server) resource(param, bound string) (string, error) {
	if param == "" {
		switch {
		case bound != "":
			return bound, nil
		case len(s.cfg.AllowedResources) == 1:
			return s.cfg.AllowedResources[0], nil
		default:
			return "", oauthErr(http.StatusBadRequest, CodeInvalidTarget, "the resource parameter is required")
		}
	}
	if err := checkResource(param); err != nil {
		return "", oauthErr(http.StatusBadRequest, CodeInvalidTarget, "%s", err.Error())
	}
	if !contains(s.cfg.AllowedResources, param) {
		return "", oauthErr(http.StatusBadRequest, CodeInvalidTarget, "resource %q is not served by this authorization server", param)
	}
	if bound != "" && param != bound {
		return "", oauthErr(http.StatusBadRequest, CodeInvalidTarget, "resource %q is not the one granted", param)
	}
	return param, nil
}
