package config

import (
	"strings"
	"testing"
)

const goodSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestWebhooksSection(t *testing.T) {
	t.Setenv("HOOK_SECRET", goodSecret)
	c, err := Parse([]byte(`
webhooks:
  - url: https://hooks.example.com/kavach?token=abc
    secret: ` + goodSecret + `
    events: [agent.created, authorize.denied]
  - id: pager
    url: http://127.0.0.1:9000/b
    secretEnv: HOOK_SECRET
    previousSecret: whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=
    events: [approval.requested]
approval:
  webhookUrl: https://legacy.example.com/approvals
events:
  retention: 3d
  decisions: [authorize.allowed]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	eps := c.WebhookEndpoints()
	if len(eps) != 3 || len(eps[0].Keys) != 1 || len(eps[0].Keys[0]) != 24 || len(eps[1].Keys) != 2 || len(eps[1].Keys[1]) != 32 ||
		eps[2].Keys != nil || !eps[2].Legacy ||
		eps[2].Events[0] != "approval.requested" || !strings.HasPrefix(eps[0].ID, "wh_") || eps[1].ID != "wh_pager" {
		t.Errorf("WebhookEndpoints = %+v", eps)
	}
	if c.EventRetention().Hours() != 72 {
		t.Errorf("EventRetention = %s; want 72h", c.EventRetention())
	}
	if d := Default(); d.Validate() != nil || d.EventRetention() != DefaultEventRetention || len(d.WebhookEndpoints()) != 0 {
		t.Errorf("defaults: %s, %d endpoints", d.EventRetention(), len(d.WebhookEndpoints()))
	}
}

func TestWebhooksRefuseBadValues(t *testing.T) {
	t.Setenv("EMPTY_SECRET", "")
	hook := func(body string) string { return "webhooks:\n  - " + body }
	for _, tt := range []struct{ yaml, want string }{
		{hook("url: ftp://x\n    secret: " + goodSecret + "\n    events: [agent.created]"), "webhooks[0].url must be an http(s) URL"},
		{hook("url: https://u:p@x\n    secret: " + goodSecret + "\n    events: [agent.created]"), "without user:password"},
		{hook("url: https://x\n    events: [agent.created]"), "webhooks[0]: a secret is required"},
		{hook("url: https://x\n    secret: abc\n    events: [agent.created]"), "webhooks[0].secret must start with whsec_"},
		{hook("url: https://x\n    secret: whsec_!!\n    events: [agent.created]"), "not standard base64"},
		{hook("url: https://x\n    secret: whsec_YWJj\n    events: [agent.created]"), "decodes to 3 bytes"},
		{hook("url: https://x\n    secretEnv: EMPTY_SECRET\n    events: [agent.created]"), "EMPTY_SECRET is not set"},
		{hook("url: https://x\n    secret: " + goodSecret + "\n    secretEnv: X\n    events: [agent.created]"), "not both"},
		{hook("url: https://x\n    secret: " + goodSecret + "\n    previousSecret: nope\n    events: [agent.created]"), "webhooks[0].previousSecret must start with whsec_"},
		{hook("url: https://x\n    previousSecret: " + goodSecret + "\n    events: [agent.created]"), "webhooks[0]: a secret is required"},
		{hook("url: https://x\n    secret: " + goodSecret), "webhooks[0].events is empty"},
		{hook("url: https://x\n    secret: " + goodSecret + "\n    events: [agent.create]"), `webhooks[0].events[0]: "agent.create" is not an event type`},
		{hook("url: https://x\n    secret: " + goodSecret + "\n    events: [agent.created, agent.created]"), "listed twice"},
		{hook("url: https://x\n    secret: " + goodSecret + "\n    events: [agent.created]\n  - url: https://x\n    secret: " + goodSecret + "\n    events: [key.created]"),
			"webhooks[1].url is the URL of webhooks[0] too"},
		{hook("url: https://x\n    secret: "+goodSecret+"\n    events: [agent.created]") + "\napproval:\n  webhookUrl: https://x", "also approval.webhookUrl"},
		{hook("url: https://x#f\n    secret: " + goodSecret + "\n    events: [agent.created]"), "#fragment"},
		{hook("url: https://Hooks.example.com:443/a\n    secret: " + goodSecret + "\n    events: [agent.created]\n  - url: https://hooks.example.com/a\n    secret: " + goodSecret + "\n    events: [key.created]"),
			"webhooks[1].url is the URL of webhooks[0] too"},
		{hook("id: Bad Name\n    url: https://x\n    secret: " + goodSecret + "\n    events: [agent.created]"), "webhooks[0].id must be"},
		{hook("id: a\n    url: https://x\n    secret: " + goodSecret + "\n    events: [agent.created]\n  - id: a\n    url: https://y\n    secret: " + goodSecret + "\n    events: [key.created]"),
			"webhooks[1].id is the id of webhooks[0] too"},
		{"approval:\n  webhookUrl: ftp://h/?token=SECRET123", "approval.webhookUrl must be an http(s) URL"},
		{"events:\n  retention: 10m", "events.retention"},
		{"events:\n  decisions: [agent.created]", `events.decisions[0]: "agent.created" is not a decision event type`},
	} {
		c, err := Parse([]byte(tt.yaml))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s\n=> %v; want an error containing %q", tt.yaml, err, tt.want)
		}
	}
}
