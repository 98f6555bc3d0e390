package oauth

import (
	"net/http"
	"net/url"
	"strings"
)

const (
	wellKnownAS = "/.well-known/oauth-authorization-server"
	wellKnownPR = "/.well-known/oauth-protected-resource"
)

// Metadata is the RFC 8414 authorization server metadata.
type Metadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	RegistrationEndpoint                       string   `json:"registration_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	JWKSURI                                    string   `json:"jwks_uri"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported  []string `json:"introspection_endpoint_auth_methods_supported"`
	ScopesSupported                            []string `json:"scopes_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

// Metadata returns the server's RFC 8414 metadata.
func (s *Server) Metadata() Metadata {
	auth := []string{AuthNone, AuthClientSecretBasic, AuthClientSecretPost}
	return Metadata{
		Issuer:                                     s.cfg.Issuer,
		AuthorizationEndpoint:                      s.endpoint("authorize"),
		TokenEndpoint:                              s.endpoint("token"),
		RegistrationEndpoint:                       s.endpoint("register"),
		RevocationEndpoint:                         s.endpoint("revoke"),
		IntrospectionEndpoint:                      s.endpoint("introspect"),
		JWKSURI:                                    s.endpoint("jwks"),
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{GrantAuthorizationCode, GrantRefreshToken},
		CodeChallengeMethodsSupported:              []string{"S256"},
		TokenEndpointAuthMethodsSupported:          auth,
		RevocationEndpointAuthMethodsSupported:     auth,
		IntrospectionEndpointAuthMethodsSupported:  auth,
		ScopesSupported:                            s.cfg.scopesSupported(),
		AuthorizationResponseIssParameterSupported: true,
	}
}

// metadataPaths: the root well-known path, and when the issuer has a path
// the path-inserted form (RFC 8414 §3.1) and the path-appended form some
// clients still try.
func (s *Server) metadataPaths() []string {
	paths := []string{wellKnownAS}
	if p := issuerPath(s.cfg.Issuer); p != "" {
		paths = append(paths, wellKnownAS+p, p+wellKnownAS)
	}
	return paths
}

func issuerPath(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.EscapedPath(), "/")
}

func (s *Server) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, s.Metadata())
}

// ResourceMetadata is the RFC 9728 protected resource metadata.
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
}

// ResourceMetadataURL is where a resource's metadata is published (RFC
// 9728 §3.1): the well-known path inserted before the resource's path, on
// the resource's own origin. The app routes it to Handler.
func ResourceMetadataURL(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return ""
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	return u.Scheme + "://" + u.Host + wellKnownPR + path
}

func (s *Server) resourceMetadataPaths() []string {
	var paths []string
	seen := map[string]bool{}
	for _, res := range s.cfg.AllowedResources {
		u, err := url.Parse(ResourceMetadataURL(res))
		if err != nil || seen[u.EscapedPath()] {
			continue
		}
		seen[u.EscapedPath()] = true
		paths = append(paths, u.EscapedPath())
	}
	if !seen[wellKnownPR] && len(s.cfg.AllowedResources) == 1 {
		// A lone resource is also described at the bare well-known path.
		paths = append(paths, wellKnownPR)
	}
	return paths
}

// resourceFor finds the allowed resource whose metadata path was asked for.
func (s *Server) resourceFor(path string) (string, bool) {
	for _, res := range s.cfg.AllowedResources {
		u, err := url.Parse(ResourceMetadataURL(res))
		if err == nil && u.EscapedPath() == path {
			return res, true
		}
	}
	if path == wellKnownPR && len(s.cfg.AllowedResources) == 1 {
		return s.cfg.AllowedResources[0], true
	}
	return "", false
}

// ProtectedResourceMetadata returns the RFC 9728 metadata of resource.
func (s *Server) ProtectedResourceMetadata(resource string) ResourceMetadata {
	return ResourceMetadata{
		Resource:               resource,
		AuthorizationServers:   []string{s.cfg.Issuer},
		ScopesSupported:        s.cfg.scopesSupported(),
		BearerMethodsSupported: []string{"header"},
	}
}

func (s *Server) serveResourceMetadata(w http.ResponseWriter, r *http.Request) {
	res, ok := s.resourceFor(r.URL.EscapedPath())
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, s.ProtectedResourceMetadata(res))
}
