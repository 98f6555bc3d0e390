package approvals

import (
	"log/slog"
	"strings"
	"testing"
)

// The webhook URL may carry a secret: errors (which get logged) never hold it.
func TestWebhookErrorsDoNotLeakTheURL(t *testing.T) {
	w := newWebhook("http://127.0.0.1:1/services/T000/B000/SECRETtoken123", slog.New(slog.DiscardHandler))
	err := w.post(t.Context(), []byte(`{}`))
	if err == nil {
		t.Fatal("post to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "/services/") {
		t.Errorf("error %q contains the webhook URL's path", err)
	}
}
