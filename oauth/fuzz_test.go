package oauth

import (
	"net/url"
	"slices"
	"testing"
)

// FuzzRegistration: any body is either refused or yields metadata whose
// redirect URIs all pass validation and whose defaults are filled.
func FuzzRegistration(f *testing.F) {
	for _, seed := range []string{
		`{"redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none"}`,
		`{"redirect_uris":["https://c.example.com/cb"],"grant_types":["authorization_code","refresh_token"]}`,
		`{"redirect_uris":["https://c.example.com/cb#x"]}`,
		`{"redirect_uris":["http://localhost.evil.com/cb"]}`,
		`{"redirect_uris":["http://[::1]:1/cb"],"response_types":["code"]}`,
		`{"redirect_uris":[]}`, `null`, `[]`, `{`, `{"redirect_uris":["https://x/"]} trailing`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseRegistration(body)
		if err != nil {
			if asError(err).Status != 400 {
				t.Fatalf("parseRegistration(%q) = %v; want a 400 error", body, err)
			}
			return
		}
		if err := checkRedirectURIs(req.RedirectURIs); err != nil {
			t.Fatalf("parseRegistration(%q) accepted redirect URIs %v: %v", body, req.RedirectURIs, err)
		}
		for _, r := range req.RedirectURIs {
			u, err := url.Parse(r)
			if err != nil || u.Fragment != "" || (u.Scheme != "https" && (u.Scheme != "http" || !isLoopbackHost(u.Hostname()))) {
				t.Fatalf("parseRegistration(%q) accepted redirect URI %q", body, r)
			}
		}
		onlyCode := len(req.ResponseTypes) > 0 && !slices.ContainsFunc(req.ResponseTypes, func(s string) bool { return s != "code" })
		if !slices.Contains(req.GrantTypes, GrantAuthorizationCode) || req.TokenEndpointAuthMethod == "" || !onlyCode {
			t.Fatalf("parseRegistration(%q) = %+v; want defaults filled", body, req)
		}
	})
}

// FuzzRedirectMatch: a match is always a registered URI, or a loopback
// http one differing from a registered one in the port alone.
func FuzzRedirectMatch(f *testing.F) {
	f.Add("http://127.0.0.1/cb", "http://127.0.0.1:8080/cb")
	f.Add("https://c.example.com/cb", "https://c.example.com/cb")
	f.Add("https://c.example.com/cb", "https://c.example.com:443/cb")
	f.Add("http://localhost/cb", "http://localhost.evil.com/cb")
	f.Add("http://[::1]/cb", "http://[::1]:9/cb?x=1")
	f.Fuzz(func(t *testing.T, registered, requested string) {
		if !matchRedirect([]string{registered}, requested) || registered == requested {
			return
		}
		r, err1 := url.Parse(registered)
		q, err2 := url.Parse(requested)
		if err1 != nil || err2 != nil || r.Scheme != "http" || q.Scheme != "http" || !isLoopbackHost(q.Hostname()) ||
			r.Hostname() != q.Hostname() || r.EscapedPath() != q.EscapedPath() || r.RawQuery != q.RawQuery || q.Fragment != "" {
			t.Fatalf("matchRedirect(%q, %q) = true; want false", registered, requested)
		}
	})
}

// FuzzVerify: no string is accepted as an access token unless the server
// issued it.
func FuzzVerify(f *testing.F) {
	h := newHarness(f, "", nil)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ1In0.")
	f.Add("eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6IngifQ.e30.AAAA")
	f.Fuzz(func(t *testing.T, token string) {
		if _, err := h.srv.Verify(t.Context(), token, "", nil); err == nil {
			t.Fatalf("Verify(%q) succeeded for a token never issued", token)
		}
	})
}
