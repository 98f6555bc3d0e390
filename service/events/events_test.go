package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/config"
	"github.com/kavach-dev/kavach/domain"
)

// The Standard Webhooks specification's published test vector: a
// receiver's library verifies what we send only if this reproduces.
func TestSignMatchesTheStandardWebhooksVector(t *testing.T) {
	key, err := config.ParseWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s; want %s", got, want)
	}
}

func TestBackoffDoublesWithinJitterUpToTheCap(t *testing.T) {
	for failed, base := range map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second, 3: 8 * time.Second, 12: MaxBackoff, 40: MaxBackoff} {
		for range 50 {
			d := Backoff(2*time.Second, failed)
			if lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2); d < lo || d > hi {
				t.Fatalf("Backoff(2s, %d) = %s; want within %s..%s", failed, d, lo, hi)
			}
		}
	}
}

func TestBody(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	ev := domain.Event{ID: "msg_1", Type: domain.EventApprovalRequested, Time: at,
		Data: json.RawMessage(`{"approvalId":"apr_1","approval":{"id":"apr_1"}}`)}
	b, err := Body(ev, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"approval.requested","timestamp":"2026-01-02T03:04:05.006Z","data":{"approvalId":"apr_1","approval":{"id":"apr_1"}}}`; string(b) != want {
		t.Errorf("Body = %s; want %s", b, want)
	}
	legacy, _ := Body(ev, true)
	if !strings.HasSuffix(string(legacy), `,"approval":{"id":"apr_1"}}`) {
		t.Errorf("legacy Body = %s; want the request as approval too", legacy)
	}
	other, _ := Body(domain.Event{Type: domain.EventAgentCreated, Time: at, Data: json.RawMessage(`{"approval":{"id":"x"}}`)}, true)
	if strings.Contains(string(other), `},"approval"`) {
		t.Errorf("legacy Body of another type = %s; want no top-level approval", other)
	}
}
