package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/kavach-dev/kavach/store"
)

// maxRegisterBytes caps a registration body.
const maxRegisterBytes = 64 << 10

// RegistrationRequest is the RFC 7591 client metadata Kavach uses; other
// fields are ignored.
type RegistrationRequest struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name"`
}

// RegistrationResponse is the RFC 7591 §3.2.1 answer. ClientSecret is shown
// once; only its hash is kept.
type RegistrationResponse struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name,omitempty"`
}

// parseRegistration decodes and validates a registration body, filling
// RFC 7591's defaults.
func parseRegistration(body []byte) (RegistrationRequest, error) {
	var req RegistrationRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return req, oauthErr(http.StatusBadRequest, CodeInvalidClientMetadata, "the body must be a JSON object of client metadata")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, oauthErr(http.StatusBadRequest, CodeInvalidClientMetadata, "trailing data after the JSON object")
	}
	return req, validateRegistration(&req)
}

// validateRegistration checks client metadata and fills RFC 7591's defaults.
func validateRegistration(req *RegistrationRequest) error {
	if err := checkRedirectURIs(req.RedirectURIs); err != nil {
		return oauthErr(http.StatusBadRequest, CodeInvalidRedirectURI, "%s", err.Error())
	}
	switch req.TokenEndpointAuthMethod {
	case "":
		req.TokenEndpointAuthMethod = AuthClientSecretBasic
	case AuthNone, AuthClientSecretBasic, AuthClientSecretPost:
	default:
		return oauthErr(http.StatusBadRequest, CodeInvalidClientMetadata, "unsupported token_endpoint_auth_method %q", req.TokenEndpointAuthMethod)
	}
	if len(req.GrantTypes) == 0 {
		req.GrantTypes = []string{GrantAuthorizationCode}
	}
	for _, g := range req.GrantTypes {
		if g != GrantAuthorizationCode && g != GrantRefreshToken {
			return oauthErr(http.StatusBadRequest, CodeInvalidClientMetadata, "unsupported grant type %q", g)
		}
	}
	if !contains(req.GrantTypes, GrantAuthorizationCode) {
		return oauthErr(http.StatusBadRequest, CodeInvalidClientMetadata, "grant_types must include authorization_code")
	}
	if len(req.ResponseTypes) == 0 {
		req.ResponseTypes = []string{"code"}
	}
	for _, rt := range req.ResponseTypes {
		if rt != "code" {
			return oauthErr(http.StatusBadRequest, CodeInvalidClientMetadata, "unsupported response type %q", rt)
		}
	}
	if len(req.ClientName) > 200 {
		return oauthErr(http.StatusBadRequest, CodeInvalidClientMetadata, "client_name is longer than 200 bytes")
	}
	if !displayable(req.ClientName) {
		// It is shown to the human on the consent page.
		return oauthErr(http.StatusBadRequest, CodeInvalidClientMetadata, "client_name has control or bidirectional formatting characters")
	}
	return nil
}

func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegisterBytes))
	if err != nil {
		s.writeError(w, r, oauthErr(http.StatusRequestEntityTooLarge, CodeInvalidClientMetadata, "the body is larger than %d bytes", maxRegisterBytes))
		return
	}
	req, err := parseRegistration(body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.RegisterClient(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

// RegisterClient validates client metadata (filling RFC 7591's defaults)
// and registers the client. A confidential client's secret is in the
// answer, once.
func (s *Server) RegisterClient(ctx context.Context, req RegistrationRequest) (RegistrationResponse, error) {
	if err := validateRegistration(&req); err != nil {
		return RegistrationResponse{}, err
	}
	c := store.OAuthClient{Name: req.ClientName, RedirectURIs: req.RedirectURIs, GrantTypes: req.GrantTypes, AuthMethod: req.TokenEndpointAuthMethod}
	var secret string
	if c.AuthMethod != AuthNone {
		secret = randomToken()
		c.SecretHash = hash(secret)
	}
	c, err := s.st.CreateOAuthClient(ctx, c)
	if err != nil {
		return RegistrationResponse{}, fmt.Errorf("oauth: register client: %w", err)
	}
	resp := RegistrationResponse{ClientID: c.ID, ClientSecret: secret, ClientIDIssuedAt: c.CreatedAt.Unix(),
		RedirectURIs: c.RedirectURIs, TokenEndpointAuthMethod: c.AuthMethod, GrantTypes: c.GrantTypes,
		ResponseTypes: req.ResponseTypes, ClientName: c.Name}
	if secret != "" {
		never := int64(0)
		resp.ClientSecretExpiresAt = &never
	}
	return resp, nil
}
