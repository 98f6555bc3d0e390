package app

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/kavach-dev/kavach/oauth"
	"github.com/kavach-dev/kavach/service/events"
)

// claimsWebhook asks the app at url for an access token's additional
// claims: a POST signed as webhooks are, {"type": "mcp.claims",
// "timestamp", "data": {userId, clientId, agentId, scopes, resource}},
// answered with a JSON object of claims (200), or 204 for none.
type claimsWebhook struct {
	url     string
	key     []byte
	timeout time.Duration
	http    *http.Client
	now     func() time.Time
}

// maxClaimsBody bounds the answer read; oauth bounds the claims again.
const maxClaimsBody = 64 << 10

func (w *claimsWebhook) claims(ctx context.Context, r oauth.ClaimsRequest) (map[string]any, error) {
	now := w.now()
	body, err := json.Marshal(struct {
		Type      string              `json:"type"`
		Timestamp string              `json:"timestamp"`
		Data      oauth.ClaimsRequest `json:"data"`
	}{"mcp.claims", now.UTC().Format(time.RFC3339Nano), r})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := events.NewSignedRequest(ctx, w.url, "msg_"+rand.Text(), now.Unix(), body, [][]byte{w.key})
	if err != nil {
		return nil, err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, events.RequestError(req, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxClaimsBody+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading the answer: %w", err)
	case resp.StatusCode == http.StatusNoContent:
		return nil, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("the receiver answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	case len(b) > maxClaimsBody:
		return nil, fmt.Errorf("the answer is over %d bytes", maxClaimsBody)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil || claims == nil {
		return nil, errors.New("the answer is not a JSON object of claims")
	}
	return claims, nil
}
