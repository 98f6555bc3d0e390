package sidecar_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/secret"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/webui"
)

// The pages' handlers, through the real server on a loopback listener:
// CSRF on every form, hostile arguments escaped, links that expire,
// belong to one approval and die with a secret, and the link shown only
// to a caller who may decide.

const pagesSecret = "pages-test-secret-0123456789abcdef0123456789"

type pagesEnv struct {
	*env
	links *webui.Links
}

func newPagesEnv(t *testing.T) pagesEnv {
	t.Helper()
	return newPagesEnvLogged(t, nil)
}

// newPagesEnvLogged is newPagesEnv with the pages' log going to log.
func newPagesEnvLogged(t *testing.T, log *slog.Logger) pagesEnv {
	t.Helper()
	svc, st, c := newService(t, service.Options{})
	sec, err := secret.New(pagesSecret)
	if err != nil {
		t.Fatal(err)
	}
	links, err := webui.NewLinks("", sec, secret.Secret{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := sec.Key("kavach ui csrf")
	h := newServer(t, svc, sidecar.Options{MaxBodyBytes: 64 << 10,
		Pages: &webui.Options{Service: svc, Links: links, CSRFKey: key, Now: c.Now, Logger: log}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	links.SetDefaultBase("http", &netAddr{u.Host})
	return pagesEnv{env: &env{srv: h, svc: svc, url: srv.URL, st: st, cl: client.New(srv.URL).WithAPIKey(testAdminKey), clock: c}, links: links}
}

type netAddr struct{ s string }

func (a *netAddr) Network() string { return "tcp" }
func (a *netAddr) String() string  { return a.s }

// pending opens an approval whose arguments are hostile markup.
func (e pagesEnv) pending(t *testing.T) api.Approval {
	t.Helper()
	a, err := e.cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "owner-1", Name: "bot",
		Permissions: []api.Permission{{Resource: "deploy:*", Actions: []string{"run"}, Constraints: map[string]any{"requireApproval": true}}}})
	if err != nil {
		t.Fatal(err)
	}
	args := json.RawMessage(`{"cmd":"<script>alert(1)</script>","q":"\"><img src=x onerror=alert(2)>","u":"javascript:alert(3)"}`)
	res, err := e.cl.Authorize(t.Context(), api.AuthorizeRequest{AgentID: a.ID, Action: "run", Resource: "deploy:prod", Arguments: args}, "")
	if err != nil || res.ApprovalID == "" {
		t.Fatalf("authorize = %+v, %v", res, err)
	}
	ap, err := e.cl.GetApproval(t.Context(), res.ApprovalID)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// browserClient keeps cookies and does not follow redirects.
func browserClient(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func post(t *testing.T, c *http.Client, u string, form url.Values, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

func TestPagesEscapeHostileArgumentsAndSetHeaders(t *testing.T) {
	e := newPagesEnv(t)
	ap := e.pending(t)
	if ap.URL == "" {
		t.Fatal("an admin's GET /v1/approvals/{id} has no url")
	}
	status, body, h := get(t, browserClient(t), ap.URL)
	if status != http.StatusOK {
		t.Fatalf("the link's page = %d:\n%s", status, body)
	}
	for _, bad := range []string{"<script>alert", "<img src=x", `href="javascript:`} {
		if strings.Contains(body, bad) {
			t.Errorf("the page carries %q unescaped", bad)
		}
	}
	for _, good := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt;", "javascript:alert(3)"} {
		if !strings.Contains(body, good) {
			t.Errorf("the page does not show %q as text", good)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, " on") && regexp.MustCompile(`<[^>]+ on[a-z]+=`).MatchString(body) {
		t.Error("the page has an inline script, style or event handler")
	}
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
}

func TestPagesCSRF(t *testing.T) {
	e := newPagesEnv(t)
	ap := e.pending(t)
	c := browserClient(t)
	_, page, _ := get(t, c, ap.URL)
	tok := csrfOf(t, page)

	// The link's form: without the token, with another one, from another
	// site, or without the cookie, nothing is decided.
	for name, tc := range map[string]struct {
		c    *http.Client
		form url.Values
		hdr  map[string]string
	}{
		"no token":       {c, url.Values{"decision": {"approve"}}, nil},
		"wrong token":    {c, url.Values{"decision": {"approve"}, "csrf": {tok[:len(tok)-2] + "xx"}}, nil},
		"cross-site":     {c, url.Values{"decision": {"approve"}, "csrf": {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		"foreign origin": {c, url.Values{"decision": {"approve"}, "csrf": {tok}}, map[string]string{"Origin": "https://evil.example"}},
		"no cookie":      {browserClient(t), url.Values{"decision": {"approve"}, "csrf": {tok}}, nil},
	} {
		if status, _ := post(t, tc.c, ap.URL, tc.form, tc.hdr); status != http.StatusForbidden {
			t.Errorf("%s: POST = %d, want 403", name, status)
		}
	}
	if got, _ := e.cl.GetApproval(t.Context(), ap.ID); got.Status != "pending" {
		t.Fatalf("a refused form decided the approval: %s", got.Status)
	}
	if status, body := post(t, c, ap.URL, url.Values{"decision": {"deny"}, "csrf": {tok}}, map[string]string{"Sec-Fetch-Site": "same-origin"}); status != http.StatusOK || !strings.Contains(body, "Denied.") {
		t.Fatalf("the right form = %d:\n%s", status, body)
	}

	// The login form and the dashboard's forms take tokens too.
	d := browserClient(t)
	_, login, _ := get(t, d, e.url+"/ui/login")
	if status, _ := post(t, d, e.url+"/ui/login", url.Values{"key": {testAdminKey}}, nil); status != http.StatusForbidden {
		t.Errorf("login without a token = %d, want 403", status)
	}
	if status, _ := post(t, d, e.url+"/ui/login", url.Values{"key": {testAdminKey}, "csrf": {csrfOf(t, login)}}, nil); status != http.StatusSeeOther {
		t.Fatalf("login = %d, want 303", status)
	}
	ap2 := e.pending(t)
	if status, _ := post(t, d, e.url+"/ui/approvals/"+ap2.ID+"/approve", url.Values{}, nil); status != http.StatusForbidden {
		t.Errorf("the dashboard's approve without a token = %d, want 403", status)
	}
	_, home, _ := get(t, d, e.url+"/ui/")
	if status, _ := post(t, d, e.url+"/ui/approvals/"+ap2.ID+"/approve", url.Values{"csrf": {csrfOf(t, home)}}, nil); status != http.StatusSeeOther {
		t.Errorf("the dashboard's approve = %d, want 303", status)
	}
	if got, _ := e.cl.GetApproval(t.Context(), ap2.ID); got.Status != "approved" || got.RespondedBy != "KAVACH_ADMIN_KEY" {
		t.Errorf("after the dashboard's approve: %+v", got)
	}
}

func TestPagesLinksExpireAndBelongToOneApproval(t *testing.T) {
	e := newPagesEnv(t)
	a, b := e.pending(t), e.pending(t)
	c := browserClient(t)
	// b's signature on a's ID, and a link under another secret, are no
	// links at all.
	sigB := b.URL[strings.LastIndex(b.URL, "/")+1:]
	if status, _, _ := get(t, c, e.url+webui.ApprovePath+a.ID+"/"+sigB); status != http.StatusForbidden {
		t.Errorf("a's ID with b's signature = %d, want 403", status)
	}
	other, _ := secret.New("another-secret-0123456789abcdef0123456789")
	ol, _ := webui.NewLinks(e.url, other, secret.Secret{})
	if status, _, _ := get(t, c, ol.URL(a.ID, a.OwnerID, a.ExpiresAt.Time)); status != http.StatusForbidden {
		t.Errorf("a link under another secret = %d, want 403", status)
	}
	// Rotated: the previous secret still verifies what it signed.
	cur, _ := secret.New(pagesSecret)
	rotated, _ := webui.NewLinks(e.url, other, cur)
	if !rotated.Valid(a.ID, a.OwnerID, a.ExpiresAt.Time, a.URL[strings.LastIndex(a.URL, "/")+1:]) {
		t.Error("after a rotation the previous secret's link is refused")
	}

	// Expired: the page says so and offers nothing; a POST decides nothing.
	_, page, _ := get(t, c, a.URL)
	tok := csrfOf(t, page)
	e.clock.Add(6 * time.Minute)
	status, body, _ := get(t, c, a.URL)
	if status != http.StatusGone || !strings.Contains(body, "expired") || strings.Contains(body, `name="decision"`) {
		t.Errorf("an expired link = %d:\n%s", status, body)
	}
	if status, _ := post(t, c, a.URL, url.Values{"decision": {"approve"}, "csrf": {tok}}, nil); status != http.StatusGone {
		t.Errorf("approving an expired link = %d, want 410", status)
	}
	if got, _ := e.cl.GetApproval(t.Context(), a.ID); got.Status == "approved" {
		t.Error("an expired link approved")
	}
}

func TestPagesLinkOnlyForDeciders(t *testing.T) {
	e := newPagesEnv(t)
	ap := e.pending(t)
	for role, want := range map[string]bool{"approver": true, "auditor": false} {
		k, err := e.cl.CreateKey(t.Context(), api.CreateKeyRequest{Name: role, Roles: []string{role}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := client.New(e.url).WithAPIKey(k.Key).GetApproval(t.Context(), ap.ID)
		if err != nil {
			t.Fatal(err)
		}
		if (got.URL != "") != want {
			t.Errorf("%s sees url %q; want a link: %v", role, got.URL, want)
		}
	}
}

func TestPagesSessionEndsWithItsKey(t *testing.T) {
	e := newPagesEnv(t)
	k, err := e.cl.CreateKey(t.Context(), api.CreateKeyRequest{Name: "viewer", Roles: []string{"auditor"}})
	if err != nil {
		t.Fatal(err)
	}
	c := browserClient(t)
	_, login, _ := get(t, c, e.url+"/ui/login")
	if status, _ := post(t, c, e.url+"/ui/login", url.Values{"key": {k.Key}, "csrf": {csrfOf(t, login)}, "next": {"https://evil.example/"}}, nil); status != http.StatusSeeOther {
		t.Fatalf("login = %d", status)
	}
	if status, _, _ := get(t, c, e.url+"/ui/"); status != http.StatusOK {
		t.Fatalf("the dashboard after login = %d", status)
	}
	// An auditor's session reads the audit log, and may not revoke.
	if status, _, _ := get(t, c, e.url+"/ui/audit"); status != http.StatusOK {
		t.Errorf("the auditor's audit page = %d", status)
	}
	_, home, _ := get(t, c, e.url+"/ui/")
	a, _ := e.cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "o", Name: "n"})
	if status, _ := post(t, c, e.url+"/ui/agents/"+a.ID+"/revoke", url.Values{"csrf": {csrfOf(t, home)}}, nil); status != http.StatusForbidden {
		t.Errorf("the auditor's revoke = %d, want 403", status)
	}
	if _, err := e.cl.RevokeKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	if status, _, h := get(t, c, e.url+"/ui/"); status != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/ui/login") {
		t.Errorf("after the key's revocation the dashboard = %d %s, want the login page", status, h.Get("Location"))
	}
}

// With a public listener, the pages are served there and not on the API's
// listener; the public listener still serves no API route.
func TestPagesOnThePublicListener(t *testing.T) {
	svc, _, c := newService(t, service.Options{})
	sec, _ := secret.New(pagesSecret)
	links, _ := webui.NewLinks("https://kavach.example.com", sec, secret.Secret{})
	h := newServer(t, svc, sidecar.Options{Pages: &webui.Options{Service: svc, Links: links, Now: c.Now}, PagesOnPublic: true})
	api := httptest.NewServer(h)
	t.Cleanup(api.Close)
	pub := httptest.NewServer(h.PublicHandler())
	t.Cleanup(pub.Close)
	cl := browserClient(t)
	if status, body, _ := get(t, cl, pub.URL+"/ui/login"); status != http.StatusOK || !strings.Contains(body, `name="key"`) {
		t.Errorf("public /ui/login = %d", status)
	}
	if status, _, _ := get(t, cl, api.URL+"/ui/login"); status == http.StatusOK {
		t.Error("the API listener serves the pages beside a public listener")
	}
	if status, _, _ := get(t, cl, pub.URL+"/v1/agents"); status != http.StatusNotFound {
		t.Errorf("public /v1/agents = %d, want 404", status)
	}
	// HTTPS public URL: the cookies are Secure.
	_, _, hdr := get(t, browserClient(t), pub.URL+"/ui/login")
	if ck := hdr.Get("Set-Cookie"); !strings.Contains(ck, "Secure") || !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") {
		t.Errorf("Set-Cookie = %q", ck)
	}
}

// A link whose page fails (the database gone) is logged without its
// signature: whoever reads the log must not be able to decide.
func TestPagesFailureLogsNoSignature(t *testing.T) {
	var log bytes.Buffer
	e := newPagesEnvLogged(t, slog.New(slog.NewTextHandler(&log, nil)))
	ap := e.pending(t)
	sig := ap.URL[strings.LastIndex(ap.URL, "/")+1:]
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	if status, body, _ := get(t, browserClient(t), ap.URL); status != http.StatusInternalServerError || strings.Contains(body, sig) {
		t.Fatalf("the link's page with the database closed = %d:\n%s", status, body)
	}
	if !strings.Contains(log.String(), "page failed") {
		t.Fatalf("the failure was not logged:\n%s", log.String())
	}
	if strings.Contains(log.String(), sig) {
		t.Errorf("the log holds the link's signature:\n%s", log.String())
	}
}

// The audit page's export and paging links keep its filters: "Export
// these rows" must not export the whole log.
func TestPagesAuditLinksKeepFilters(t *testing.T) {
	e := newPagesEnv(t)
	ap := e.pending(t)
	c := browserClient(t)
	_, login, _ := get(t, c, e.url+"/ui/login")
	if status, _ := post(t, c, e.url+"/ui/login", url.Values{"key": {testAdminKey}, "csrf": {csrfOf(t, login)}}, nil); status != http.StatusSeeOther {
		t.Fatalf("login = %d", status)
	}
	_, page, _ := get(t, c, e.url+"/ui/audit?agentId="+ap.AgentID+"&action=run")
	want := `href="/ui/audit/export?format=csv&amp;action=run&amp;agentId=` + ap.AgentID + `"`
	if !strings.Contains(page, want) {
		t.Errorf("the audit page has no %s:\n%s", want, page)
	}
}

// An agent imported from KavachOS keeps its UUID: the dashboard finds it
// by that ID, shows it and acts on it as on any other.
func TestPagesImportedAgent(t *testing.T) {
	e := newPagesEnv(t)
	ctx := t.Context()
	id := "0b5f3a9e-6c3b-4f7e-9d1a-2b3c4d5e6f70"
	at := e.clock.Now().UTC().Truncate(time.Millisecond)
	if _, err := e.st.ImportAgents(ctx, []domain.Agent{{ID: id, OwnerID: "user-1", Name: "imported-agent", Type: "autonomous",
		Status: domain.StatusActive, TokenHash: strings.Repeat("ab", 32), Metadata: map[string]any{}, CreatedAt: at, UpdatedAt: at,
		Permissions: []domain.Permission{{Resource: "mcp:github:*", Actions: []string{"read"}}}}}, false); err != nil {
		t.Fatal(err)
	}
	// As a sidecar started on the imported database would.
	if err := e.svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	c := browserClient(t)
	_, login, _ := get(t, c, e.url+"/ui/login")
	if status, _ := post(t, c, e.url+"/ui/login", url.Values{"key": {testAdminKey}, "csrf": {csrfOf(t, login)}}, nil); status != http.StatusSeeOther {
		t.Fatalf("login = %d", status)
	}
	if status, _, h := get(t, c, e.url+"/ui/?q="+id); status != http.StatusSeeOther || h.Get("Location") != "/ui/agents/"+id {
		t.Errorf("searching for the UUID = %d %s; want a redirect to its page", status, h.Get("Location"))
	}
	status, page, _ := get(t, c, e.url+"/ui/agents/"+id)
	if status != http.StatusOK || !strings.Contains(page, "imported-agent") {
		t.Fatalf("the imported agent's page = %d:\n%s", status, page)
	}
	if status, _ := post(t, c, e.url+"/ui/agents/"+id+"/revoke", url.Values{"csrf": {csrfOf(t, page)}}, nil); status != http.StatusSeeOther {
		t.Fatalf("revoking the imported agent = %d", status)
	}
	if _, page, _ := get(t, c, e.url+"/ui/agents/"+id+"?done=revoked:"+id); !strings.Contains(page, "Revoked "+id+".") {
		t.Errorf("the page after revoking does not say so:\n%s", page)
	}
	if a, err := e.cl.GetAgent(ctx, id); err != nil || a.Status != domain.StatusRevoked {
		t.Errorf("GetAgent(%s) after revoke = %+v, %v", id, a, err)
	}
}
