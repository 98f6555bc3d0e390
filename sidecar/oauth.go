package sidecar

import (
	"errors"
	"net/http"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/oauth"
	"github.com/kavach-dev/kavach/store"
	"github.com/kavach-dev/kavach/webui"
)

// oauthRouteTable serves the MCP authorization server: its public
// endpoints (also on the public listener, see PublicHandler) and the API
// the app uses to answer consent requests and check tokens.
func (s *Server) oauthRouteTable() []Route {
	as := s.opts.OAuth
	if as == nil {
		off := func(w http.ResponseWriter, r *http.Request) {
			s.fail(w, r, apperr.New(apperr.NotFound, "mcp_disabled", "the MCP authorization server is off (mcp.enabled: false)"))
		}
		return []Route{{"oauth.disabled", "/v1/oauth/", off}}
	}
	var rs []Route
	for _, r := range as.Routes() {
		rs = append(rs, Route{r.Name, r.Pattern, r.Handler})
	}
	return append(rs,
		Route{"oauth.requests.get", "GET /v1/oauth/requests/{handle}", s.oauthRequest},
		Route{"oauth.requests.approve", "POST /v1/oauth/requests/{handle}/approve", s.oauthApprove},
		Route{"oauth.requests.deny", "POST /v1/oauth/requests/{handle}/deny", s.oauthDeny},
		Route{"oauth.verify", "POST /v1/oauth/verify", s.oauthVerify},
		Route{"oauth.keys.rotate", "POST /v1/oauth/keys/rotate", s.oauthRotateKey},
	)
}

// PublicHandler serves only the OAuth endpoints MCP clients and browsers
// must reach (metadata, registration, authorize, token, revocation,
// introspection, JWKS): what a listener outside the pod may expose. Nil
// when MCP is off.
func (s *Server) PublicHandler() http.Handler {
	pages := s.ui != nil && s.opts.PagesOnPublic
	if s.opts.OAuth == nil && !pages {
		return nil
	}
	mux := http.NewServeMux()
	if s.opts.OAuth != nil {
		s.opts.OAuth.Register(mux)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pages && webui.Owns(r.URL.Path) {
			s.servePage(&statusWriter{ResponseWriter: w, status: http.StatusOK}, r, time.Now())
			return
		}
		if h, pattern := mux.Handler(r); pattern == "" {
			// As on the main listener: 405 with Allow for a wrong method.
			rec := &headerRecorder{header: http.Header{}}
			h.ServeHTTP(rec, r)
			if allow := rec.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
				s.fail(w, r, methodNotAllowed(r, allow))
				return
			}
			s.fail(w, r, noEndpoint(r))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) oauthRequest(w http.ResponseWriter, r *http.Request) {
	p, err := s.opts.OAuth.Request(r.Context(), r.PathValue("handle"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// ConsentDecision is the app's answer for a user it has authenticated.
type ConsentDecision struct {
	UserID string `json:"userId"`
	// Scopes granted: a subset of those requested; omitted means all.
	Scopes []string `json:"scopes"`
}

type redirect struct {
	RedirectURL string `json:"redirectUrl"`
}

func (s *Server) oauthApprove(w http.ResponseWriter, r *http.Request) {
	var req ConsentDecision
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	// The user is the app's word, recorded beside the credential that gave it.
	actor := store.ActorFrom(r.Context())
	actor.OnBehalfOf = req.UserID
	u, err := s.opts.OAuth.Approve(store.WithActor(r.Context(), actor), r.PathValue("handle"), req.UserID, req.Scopes)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, redirect{RedirectURL: u})
}

func (s *Server) oauthDeny(w http.ResponseWriter, r *http.Request) {
	u, err := s.opts.OAuth.Deny(r.Context(), r.PathValue("handle"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, redirect{RedirectURL: u})
}

// oauthVerify is the bearer check for an app that does not link the Go
// middleware (oauth.Server.RequireToken): a refusal is answered exactly as
// the MCP server must answer its client (status, WWW-Authenticate and
// body), so the app can relay it as is.
func (s *Server) oauthVerify(w http.ResponseWriter, r *http.Request) {
	var req api.VerifyRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	as := s.opts.OAuth
	if req.Resource == "" && len(as.Config().AllowedResources) != 1 {
		// Verify would take a token for any allowed resource: one MCP
		// server would accept another's tokens.
		s.fail(w, r, apperr.New(apperr.Invalid, "missing_field",
			"resource is required: the URI of the MCP server the token was sent to (mcp.allowedResources has more than one)"))
		return
	}
	c, err := as.Verify(r.Context(), req.Token, req.Resource, req.Scopes)
	switch {
	case errors.Is(err, oauth.ErrNoToken) && !as.Config().EnforceAuth:
		writeJSON(w, http.StatusOK, api.VerifyResponse{})
	case err != nil:
		as.Challenge(w, req.Resource, err)
	default:
		exp := api.NewTime(c.ExpiresAt)
		writeJSON(w, http.StatusOK, api.VerifyResponse{Active: true, AgentID: c.AgentID, Subject: c.Subject, ClientID: c.ClientID,
			Scopes: c.Scopes, Audience: c.Audience, ExpiresAt: &exp})
	}
}

func (s *Server) oauthRotateKey(w http.ResponseWriter, r *http.Request) {
	if err := s.opts.OAuth.RotateKey(r.Context()); err != nil {
		if errors.Is(err, oauth.ErrNoKeyRotation) {
			err = apperr.Wrap(err, apperr.Conflict, "no_key_rotation", "tokens are signed with mcp.signingSecret (HS256): change the secret to rotate")
		}
		s.fail(w, r, err)
		return
	}
	keys, err := s.opts.OAuth.JWKS(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}
