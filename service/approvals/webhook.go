package approvals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service/internal/core"
)

// webhook delivers approval requests to approval.webhookUrl in the
// background, with retries, so a slow or failing receiver never delays a
// decision. Deliveries are at least once; receivers dedupe by approval ID.
type webhook struct {
	url   string
	http  *http.Client
	queue chan domain.Approval
	log   *slog.Logger
	// backoff is the wait before each retry.
	backoff []time.Duration
}

func newWebhook(url string, log *slog.Logger) *webhook {
	return &webhook{
		url:     url,
		http:    &http.Client{Timeout: 10 * time.Second},
		queue:   make(chan domain.Approval, 1024),
		log:     log,
		backoff: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second},
	}
}

// enqueue never blocks: with the queue full, the request is logged and
// dropped (it stays listed by GET /v1/approvals).
func (w *webhook) enqueue(a domain.Approval) {
	select {
	case w.queue <- a:
	default:
		w.log.Error("approval webhook queue full; notification dropped", "approval", a.ID)
	}
}

func (w *webhook) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-w.queue:
			w.deliver(ctx, a)
		}
	}
}

func (w *webhook) deliver(ctx context.Context, a domain.Approval) {
	body, err := json.Marshal(map[string]any{"type": "approval.requested", "approval": core.APIApproval(a)})
	if err != nil {
		w.log.Error("approval webhook: encode", "approval", a.ID, "error", err)
		return
	}
	for attempt := 0; ; attempt++ {
		err := w.post(ctx, body)
		if err == nil {
			w.log.Debug("approval webhook delivered", "approval", a.ID, "attempt", attempt+1)
			return
		}
		if attempt >= len(w.backoff) || ctx.Err() != nil {
			w.log.Error("approval webhook failed; giving up", "approval", a.ID, "attempts", attempt+1, "error", err)
			return
		}
		w.log.Warn("approval webhook failed; retrying", "approval", a.ID, "attempt", attempt+1, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.backoff[attempt]):
		}
	}
}

// post delivers one body. Its errors never carry the URL, which may hold a
// secret (many receivers put their token in the path).
func (w *webhook) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("invalid webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kavach-webhook")
	resp, err := w.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("%s %s: %w", ue.Op, req.URL.Host, ue.Err)
		}
		return errors.New("request failed")
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}
