package oauth

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// checkRedirectURI accepts an absolute https URI, or http on localhost,
// 127.0.0.1 (any loopback IP) or [::1] with any port; never a fragment.
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("redirect URI %q: %w", raw, err)
	case !u.IsAbs() || u.Host == "":
		return fmt.Errorf("redirect URI %q is not absolute", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("redirect URI %q has a fragment", raw)
	case u.User != nil:
		return fmt.Errorf("redirect URI %q has user information", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("redirect URI %q: http is allowed only on localhost, 127.0.0.1 or [::1]", raw)
	default:
		return fmt.Errorf("redirect URI %q: scheme must be https (or http on a loopback host)", raw)
	}
}

func checkRedirectURIs(uris []string) error {
	if len(uris) == 0 {
		return errors.New("at least one redirect URI is required")
	}
	for _, u := range uris {
		if err := checkRedirectURI(u); err != nil {
			return err
		}
	}
	return nil
}

// matchRedirect reports whether the requested redirect URI is one of the
// registered ones: an exact string match, except that for http loopback
// URIs the port may differ (RFC 8252 §7.3).
func matchRedirect(registered []string, requested string) bool {
	for _, r := range registered {
		if r == requested {
			return true
		}
	}
	q, err := url.Parse(requested)
	if err != nil || q.Scheme != "http" || !isLoopbackHost(q.Hostname()) || checkRedirectURI(requested) != nil {
		return false
	}
	for _, r := range registered {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "http" || !isLoopbackHost(u.Hostname()) {
			continue
		}
		if u.Hostname() == q.Hostname() && u.EscapedPath() == q.EscapedPath() && u.RawQuery == q.RawQuery &&
			u.ForceQuery == q.ForceQuery {
			return true
		}
	}
	return false
}

// withParams appends params to a redirect URI, keeping its own query byte
// for byte (RFC 6749 §3.1.2: the query component is retained; re-encoding
// it would reorder it and drop what Go's parser rejects, such as ';').
// Redirect URIs never have a fragment (checkRedirectURI).
func withParams(redirect string, params url.Values) string {
	add := url.Values{}
	for k, vs := range params {
		for _, v := range vs {
			if v != "" {
				add.Add(k, v)
			}
		}
	}
	enc := add.Encode()
	switch {
	case enc == "":
		return redirect
	case !strings.Contains(redirect, "?"):
		return redirect + "?" + enc
	case strings.HasSuffix(redirect, "?") || strings.HasSuffix(redirect, "&"):
		return redirect + enc
	default:
		return redirect + "&" + enc
	}
}
