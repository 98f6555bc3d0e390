package tests

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

// The pages, driven in a real headless Chromium (Debian's chromium
// package; .ci/run installs it) against the real binary: the owner opens
// an approval's signed link, sees what is asked and decides in one click;
// the dashboard takes an API key and shows what its roles allow.
// Screenshots of each page go to $KAVACH_ARTIFACTS (default
// tests/artifacts, not committed); -update-screenshots also rewrites the
// README's images in docs/images.

var updateScreenshots = flag.Bool("update-screenshots", false, "rewrite the README's screenshots in docs/images")

const browserSecret = "browser-test-secret-0123456789abcdef0123"

// chromium finds the browser: a test machine without one skips, CI fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium on this CI machine: .ci/run installs Debian's chromium package")
	}
	t.Skip("no Chromium (apt-get install -y chromium): the browser tests need it")
	return ""
}

// browser is one headless Chromium with its own profile (its own cookies).
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root in a container; the pages are our own
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 800),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancel := chromedp.NewContext(alloc)
	// The first call starts the browser, for as long as browserCtx lives
	// (no timeout on it); the test's steps get a deadline of their own.
	if err := chromedp.Do(browserCtx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(browserCtx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	// A script an argument smuggled in would open a dialog: fail on any.
	err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			t.Errorf("a JavaScript dialog opened: %q (an argument ran as script)", d.Message)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KAVACH_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shot keeps a screenshot of the page as an artifact, and as the README's
// image readme (a name in docs/images) under -update-screenshots.
func shot(ctx context.Context, t *testing.T, name, readme string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(artifactsDir(t), name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if *updateScreenshots && readme != "" {
		jpg, err := chromedp.Run(ctx, chromedp.FullScreenshot(70))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", "images", readme), jpg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// text is the visible text of the page's main element.
func text(ctx context.Context, t *testing.T) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatalf("read the page: %v", err)
	}
	return s
}

func countIn(ctx context.Context, t *testing.T, selector string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(selector)+`).length`))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func jsString(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// approvalFixture is an agent whose deploy:prod run needs approval, on
// a sidecar whose approval.requested webhooks reach hooks (the owner's
// pager, in life).
type approvalFixture struct {
	s     *sidecar
	agent api.AgentWithToken
	hooks chan []byte
}

func newApprovalFixture(t *testing.T) approvalFixture {
	t.Helper()
	hooks := make(chan []byte, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case hooks <- b:
		default:
		}
	}))
	t.Cleanup(recv.Close)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, "webhooks:\n  - url: "+recv.URL+"/pager\n    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n    events: [approval.requested]\n")
	s, err := startEnv(t, []string{"KAVACH_SECRET=" + browserSecret}, "--database", filepath.Join(dir, "kavach.db"), "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.adminClient().CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "alice@example.com", Name: "deploy-bot",
		Type: "autonomous", Permissions: []api.Permission{
			{Resource: "deploy:prod", Actions: []string{"run"}, Constraints: map[string]any{"requireApproval": true}},
			{Resource: "repo:kavach", Actions: []string{"read"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return approvalFixture{s: s, agent: a, hooks: hooks}
}

// webhookURL is the url the approval.requested webhook of approval id
// carried.
func (f approvalFixture) webhookURL(t *testing.T, id string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case b := <-f.hooks:
			var p struct {
				Type string
				Data struct {
					ApprovalID string `json:"approvalId"`
					URL        string `json:"url"`
				}
			}
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatalf("webhook body %s: %v", b, err)
			}
			if p.Type == "approval.requested" && p.Data.ApprovalID == id {
				return p.Data.URL
			}
		case <-deadline:
			t.Fatalf("no approval.requested webhook for %s", id)
		}
	}
}

// ask asks for a deploy with hostile arguments; it opens an approval.
// With approvalID it retries under that approval, as an agent does once
// its owner approved.
func (f approvalFixture) ask(t *testing.T, service, approvalID string) api.AuthorizeResponse {
	t.Helper()
	args, _ := json.Marshal(map[string]any{"service": service, "note": `<script>alert("pwned")</script><img src=x onerror=alert(1)>`})
	res, err := f.s.adminClient().Authorize(t.Context(), api.AuthorizeRequest{AgentID: f.agent.ID, Action: "run", Resource: "deploy:prod",
		Arguments: args, ApprovalID: approvalID}, "")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f approvalFixture) approval(t *testing.T, id string) api.Approval {
	t.Helper()
	a, err := f.s.adminClient().GetApproval(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBrowserApprovalLink(t *testing.T) {
	f := newApprovalFixture(t)
	ctx := browser(t)
	res := f.ask(t, "payments", "")
	if res.Allowed || res.ApprovalID == "" {
		t.Fatalf("the deploy = %+v, want an approval request", res)
	}
	link := f.approval(t, res.ApprovalID).URL
	if !strings.HasPrefix(link, f.s.URL+"/ui/approve/"+res.ApprovalID+"/") {
		t.Fatalf("url = %q, want a signed link under %s", link, f.s.URL)
	}
	// The owner's notification carries the same link.
	if hook := f.webhookURL(t, res.ApprovalID); hook != link {
		t.Errorf("the approval.requested webhook's url = %q, want %q", hook, link)
	}
	// The live feed, which auditors read, does not.
	resp, err := keyed(adminKey).Get(f.s.URL + "/v1/events?after=0&follow=false")
	if err != nil {
		t.Fatal(err)
	}
	feed, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(feed), res.ApprovalID) || strings.Contains(string(feed), "/ui/approve/") {
		t.Errorf("GET /v1/events shows no approval, or its link:\n%s", feed)
	}

	// The owner opens the link: who asks for what, with the arguments as
	// text (the script in them stays text), the reason and time left.
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("button.approve"))); err != nil {
		t.Fatal(err)
	}
	body := text(ctx, t)
	for _, want := range []string{"deploy-bot", "autonomous", "alice@example.com", "run", "deploy:prod", `"service": "payments"`,
		`<script>alert(\"pwned\")</script><img src=x onerror=alert(1)>`, "requires human approval", "Time left", "Trust"} {
		if !strings.Contains(body, want) {
			t.Errorf("the approval page does not show %q:\n%s", want, body)
		}
	}
	if n := countIn(ctx, t, "main script, main img"); n != 0 {
		t.Errorf("the arguments became %d elements", n)
	}
	shot(ctx, t, "approval-page", "approval-page.jpg")

	// One click approves; the result page says so.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("button.approve")), chromedp.WaitVisible(chromedp.CSS("p.flash"))); err != nil {
		t.Fatal(err)
	}
	if body := text(ctx, t); !strings.Contains(body, "Approved.") || !strings.Contains(body, "alice@example.com (via signed link)") {
		t.Errorf("the result page:\n%s", body)
	}
	shot(ctx, t, "approval-approved", "")
	a := f.approval(t, res.ApprovalID)
	if a.Status != "approved" || a.OnBehalfOf != "alice@example.com" || a.RespondedByName != "via signed link" || a.URL != "" {
		t.Errorf("the approval after the click = %+v", a)
	}
	// The approved call is allowed once.
	if again := f.ask(t, "payments", res.ApprovalID); !again.Allowed {
		t.Errorf("the approved deploy = %+v, want allowed", again)
	}
	if third := f.ask(t, "payments", res.ApprovalID); third.Allowed {
		t.Errorf("a second deploy on one approval = %+v, want refused", third)
	}
	// The audit row names the owner, via the signed link.
	page, err := f.s.adminClient().QueryAudit(t.Context(), client.AuditFilter{Action: "approval.approve"})
	if err != nil || len(page.Entries) != 1 {
		t.Fatalf("approval.approve rows = %+v, %v", page, err)
	}
	if act := page.Entries[0].Actor; act.Type != "signed_link" || act.ID != "alice@example.com" || act.Name != "via signed link" {
		t.Errorf("the approval's audit actor = %+v", act)
	}

	// The same link again: no decision offered, and why.
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("p.error"))); err != nil {
		t.Fatal(err)
	}
	if body := text(ctx, t); !strings.Contains(body, "already decided") || countIn(ctx, t, "button.approve, button.deny") != 0 {
		t.Errorf("the used link offers a decision or does not say why:\n%s", body)
	}
	shot(ctx, t, "approval-used", "")
}

func TestBrowserForgedLinkAndDeny(t *testing.T) {
	f := newApprovalFixture(t)
	ctx := browser(t)
	res := f.ask(t, "billing", "")
	link := f.approval(t, res.ApprovalID).URL

	// A forged signature: refused, nothing offered, nothing changed.
	sig := link[strings.LastIndex(link, "/")+1:]
	flipped := "A"
	if sig[0] == 'A' {
		flipped = "B"
	}
	forged := strings.TrimSuffix(link, sig) + flipped + sig[1:]
	if err := chromedp.Do(ctx, chromedp.Navigate(forged), chromedp.WaitVisible(chromedp.CSS("p.error"))); err != nil {
		t.Fatal(err)
	}
	if body := text(ctx, t); !strings.Contains(body, "not valid") || countIn(ctx, t, "button.approve, button.deny") != 0 {
		t.Errorf("the forged link's page:\n%s", body)
	}
	shot(ctx, t, "approval-forged", "")
	// Posting a decision to the forged link directly changes nothing.
	resp, err := http.PostForm(forged, map[string][]string{"decision": {"approve"}, "csrf": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST to a forged link = %d, want 403", resp.StatusCode)
	}
	if a := f.approval(t, res.ApprovalID); a.Status != "pending" {
		t.Fatalf("after the forged link the approval is %s", a.Status)
	}

	// Deny through the real link, on a phone-sized screen, from the
	// keyboard: one column, nothing wider than the screen, the buttons in
	// reach of Tab and Enter.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("button.deny"))); err != nil {
		t.Fatal(err)
	}
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil || w > 390 {
		t.Errorf("on a 390 px screen the approval page is %d px wide (%v)", w, err)
	}
	shot(ctx, t, "approval-phone", "")
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("button.deny")), chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS("p.flash")), chromedp.EmulateReset()); err != nil {
		t.Fatal(err)
	}
	if body := text(ctx, t); !strings.Contains(body, "Denied.") {
		t.Errorf("the result page:\n%s", body)
	}
	if a := f.approval(t, res.ApprovalID); a.Status != "denied" || a.OnBehalfOf != "alice@example.com" {
		t.Errorf("after Deny the approval = %+v", a)
	}
	if again := f.ask(t, "billing", res.ApprovalID); again.Allowed {
		t.Errorf("the denied deploy = %+v, want refused", again)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("p.error"))); err != nil {
		t.Fatal(err)
	}
	if countIn(ctx, t, "button.approve, button.deny") != 0 {
		t.Error("a denied approval's link still offers a decision")
	}
}

// login logs the browser in with key; it expects to land on the dashboard.
func login(ctx context.Context, t *testing.T, base, key string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("#pending"))); err != nil {
		t.Fatalf("log in: %v", err)
	}
}

func TestBrowserDashboard(t *testing.T) {
	f := newApprovalFixture(t)
	res := f.ask(t, "search", "")
	ctx := browser(t)

	// No session: the login page; a wrong key is refused.
	if err := chromedp.Do(ctx, chromedp.Navigate(f.s.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#key"))); err != nil {
		t.Fatal(err)
	}
	shot(ctx, t, "dashboard-login", "")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#key"), "kvk_not-a-real-key-at-all-0123456789abcdefghijk"),
		chromedp.Submit(chromedp.CSS("#key")), chromedp.WaitVisible(chromedp.CSS("p.error"))); err != nil {
		t.Fatal(err)
	}
	if body := text(ctx, t); !strings.Contains(body, "not a valid API key") {
		t.Errorf("a wrong key's page:\n%s", body)
	}

	// The admin key: agents and the pending approval, with its buttons.
	login(ctx, t, f.s.URL, adminKey)
	body := text(ctx, t)
	for _, want := range []string{"Pending approvals", "deploy:prod", `"service": "search"`, "deploy-bot", "alice@example.com", "active"} {
		if !strings.Contains(body, want) {
			t.Errorf("the dashboard does not show %q:\n%s", want, body)
		}
	}
	if countIn(ctx, t, "button.approve") != 1 {
		t.Error("the admin sees no Approve button on the pending approval")
	}
	shot(ctx, t, "dashboard", "dashboard.jpg")
	// The agent's page, the audit log and the live feed.
	for _, p := range []struct{ path, wait, want, name string }{
		{"/ui/agents/" + f.agent.ID, "#perms", "repo:kavach", "dashboard-agent"},
		{"/ui/audit?agentId=" + f.agent.ID, "table", "requires human approval", "dashboard-audit"},
		{"/ui/events", "#events", "agent.created", "dashboard-events"},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(f.s.URL+p.path), chromedp.WaitVisible(chromedp.CSS(p.wait))); err != nil {
			t.Fatalf("%s: %v", p.path, err)
		}
		if body := text(ctx, t); !strings.Contains(body, p.want) {
			t.Errorf("%s does not show %q:\n%s", p.path, p.want, body)
		}
		shot(ctx, t, p.name, "")
	}
	// The feed follows live: a new agent appears without a reload.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.Search(`//span[@id="feed-state"][text()="live"]`))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.adminClient().CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "bob", Name: "late-arrival"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.Search(`//table[@id="events"]//pre[contains(., "late-arrival")]`))); err != nil {
		t.Errorf("the live feed did not show the new agent: %v", err)
	}

	// Log out; an auditor reads but cannot approve, even by posting the
	// form the page would not show.
	if err := chromedp.Do(ctx, chromedp.Navigate(f.s.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("button.link")),
		chromedp.Click(chromedp.CSS("button.link")), chromedp.WaitVisible(chromedp.CSS("#key"))); err != nil {
		t.Fatal(err)
	}
	auditor := f.s.mintKey(t, "eve-auditor", "auditor")
	login(ctx, t, f.s.URL, auditor.Key)
	if body := text(ctx, t); !strings.Contains(body, "deploy:prod") || !strings.Contains(body, "read only") {
		t.Errorf("the auditor's dashboard:\n%s", body)
	}
	if countIn(ctx, t, "button.approve, button.deny") != 0 {
		t.Error("the auditor's dashboard offers Approve or Deny")
	}
	shot(ctx, t, "dashboard-auditor", "")
	forge := `(function(){var f=document.createElement("form");f.method="post";f.action="/ui/approvals/` + res.ApprovalID + `/approve";` +
		`var c=document.createElement("input");c.name="csrf";c.value=document.querySelector("form.logout input[name=csrf]").value;f.appendChild(c);` +
		`document.body.appendChild(f);f.submit();return true})()`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](forge)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("p.error"))); err != nil {
		t.Fatal(err)
	}
	if body := text(ctx, t); !strings.Contains(body, "do not allow") {
		t.Errorf("the auditor's approve:\n%s", body)
	}
	if a := f.approval(t, res.ApprovalID); a.Status != "pending" {
		t.Errorf("after the auditor's attempt the approval is %s", a.Status)
	}
}
