// Package webui is the pages humans use: the page an approval's signed
// link opens, where its owner approves or denies in one click, and the
// dashboard at /ui/ (agents, approvals, the audit log, the live event
// feed), logged into with an API key and as capable as the key's roles.
//
// Server-rendered with html/template from files embedded in the binary,
// plain HTML forms that work without JavaScript (one small script only
// feeds the live events page), a strict Content-Security-Policy without
// inline script or style, and CSRF tokens on every form.
package webui

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kavach-dev/kavach/access"
	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/store"
)

//go:embed templates/*.html static/*
var files embed.FS

// Options configures the pages.
type Options struct {
	Service *service.Service
	Access  *access.Policy
	// Links signs approval links; a Links without secret signs none, and
	// the approval page then refuses every link.
	Links *Links
	// CSRFKey keys the CSRF tokens; nil draws a random one (forms then
	// work on this process only).
	CSRFKey []byte
	Logger  *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Export streams the audit log for the request's query (the API's
	// GET /v1/audit/export handler); the page checks the role first.
	Export http.HandlerFunc
}

// UI serves the pages. Safe for concurrent use.
type UI struct {
	svc      *service.Service
	access   *access.Policy
	links    *Links
	csrfKey  []byte
	log      *slog.Logger
	now      func() time.Time
	pages    map[string]*template.Template
	sessions *sessions
	mux      *http.ServeMux
	// streamTotal and streamsOf (by key ID) count the open live feeds.
	streamMu    sync.Mutex
	streamTotal int
	streamsOf   map[string]int
	export      http.HandlerFunc
	// stopping is closed on shutdown: the live feeds end.
	stopping chan struct{}
	stopOnce sync.Once
}

// maxFormBytes bounds a posted form: a key, a token and a button.
const maxFormBytes = 16 << 10

// New parses the templates and returns the pages' handler.
func New(o Options) (*UI, error) {
	u := &UI{svc: o.Service, access: o.Access, links: o.Links, csrfKey: o.CSRFKey, log: o.Logger, now: o.Now,
		mux: http.NewServeMux(), streamsOf: map[string]int{},
		export: o.Export, stopping: make(chan struct{})}
	if u.now == nil {
		u.now = time.Now
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.links == nil {
		u.links = &Links{}
	}
	if len(u.csrfKey) == 0 {
		u.csrfKey = make([]byte, 32)
		_, _ = rand.Read(u.csrfKey)
	}
	u.sessions = newSessions(u.now)
	if err := u.parse(); err != nil {
		return nil, err
	}
	u.routes()
	return u, nil
}

func (u *UI) parse() error {
	u.pages = map[string]*template.Template{}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(files, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("template %s: %w", base, err)
		}
		u.pages[strings.TrimSuffix(base, ".html")] = t
	}
	return nil
}

func (u *UI) routes() {
	static, _ := fs.Sub(files, "static")
	u.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	u.mux.HandleFunc("GET /ui/login", u.loginPage)
	u.mux.HandleFunc("POST /ui/login", u.login)
	u.mux.HandleFunc("POST /ui/logout", u.logout)
	u.mux.HandleFunc("GET /ui/{$}", u.authed(u.home))
	u.mux.HandleFunc("GET /ui/agents/{id}", u.authed(u.agentPage))
	u.mux.HandleFunc("POST /ui/agents/{id}/{op}", u.authed(u.agentAction))
	u.mux.HandleFunc("POST /ui/approvals/{id}/{op}", u.authed(u.resolve))
	u.mux.HandleFunc("GET /ui/audit", u.authed(u.auditPage))
	u.mux.HandleFunc("GET /ui/audit/export", u.authed(u.auditExport))
	u.mux.HandleFunc("GET /ui/events", u.authed(u.eventsPage))
	u.mux.HandleFunc("GET /ui/events/stream", u.authed(u.eventsStream))
	u.mux.HandleFunc("GET "+ApprovePath+"{id}/{sig}", u.approvalPage)
	u.mux.HandleFunc("POST "+ApprovePath+"{id}/{sig}", u.approvalDecide)
	u.mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	})
}

// Stop ends the live feeds (a listener is shutting down).
func (u *UI) Stop() { u.stopOnce.Do(func() { close(u.stopping) }) }

// Owns reports whether path is one of the pages'.
func Owns(path string) bool { return path == "/ui" || strings.HasPrefix(path, "/ui/") }

// ServeHTTP serves a page with the security headers every page carries.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// A signed link is in the path: never send it on as a Referer.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		h.Set("Cache-Control", "no-store")
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if !u.sameOrigin(r) {
			u.errorPage(w, r, http.StatusForbidden, "Refused", "This form was posted from another site.")
			return
		}
	}
	u.mux.ServeHTTP(w, r)
}

// view is what every page's template gets.
type view struct {
	Title   string
	Nav     string
	User    *userView
	CSRF    string
	Flash   string
	Error   string
	Data    any
	Version string
}

type userView struct {
	Name  string
	Roles string
	can   func(string) bool
}

// Can reports whether the logged-in key may use route (the API policy's
// name of the call the page makes for it).
func (v *userView) Can(route string) bool { return v != nil && v.can(route) }

func (u *UI) render(w http.ResponseWriter, status int, name string, v view) {
	t, ok := u.pages[name]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		u.log.Error("render page", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

func (u *UI) errorPage(w http.ResponseWriter, _ *http.Request, status int, title, msg string) {
	u.render(w, status, "message", view{Title: title, Error: msg})
}

// can decides route for p as the API would.
func (u *UI) can(p service.Principal, route string) bool {
	return u.access.Decide(route, access.Key, p.Roles).Allow
}

// current is the logged-in caller of a request.
type current struct {
	id string
	session
}

// authed runs h for a request with a live session whose key is still
// good; others go to the login page (a GET) or get a 401 page.
func (u *UI) authed(h func(http.ResponseWriter, *http.Request, current)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		var s session
		ok := false
		if err == nil {
			s, ok = u.sessions.get(c.Value)
		}
		if ok {
			if err := u.stillGood(r.Context(), s.principal); err != nil {
				u.sessions.end(c.Value)
				ok = false
			}
		}
		if !ok {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/stream") {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			u.errorPage(w, r, http.StatusUnauthorized, "Logged out", "Your session has ended. Log in again.")
			return
		}
		if r.Method == http.MethodPost && !csrfEqual(s.csrf, r.PostFormValue("csrf")) {
			u.errorPage(w, r, http.StatusForbidden, "Refused", "The form's security token is missing or wrong. Reload the page and try again.")
			return
		}
		ctx := store.WithActor(r.Context(), s.principal.Actor)
		h(w, r.WithContext(ctx), current{id: c.Value, session: s})
	}
}

// stillGood re-reads an API key: revoked or expired, its sessions end.
func (u *UI) stillGood(ctx context.Context, p service.Principal) error {
	if p.Actor.Type != domain.ActorKey {
		return nil // KAVACH_ADMIN_KEY holds while the process runs
	}
	k, err := u.svc.GetKey(ctx, p.Actor.ID)
	switch {
	case err != nil:
		return err
	case k.Status != "active":
		return errors.New("key " + k.Status)
	case k.ExpiresAt != nil && !u.now().Before(k.ExpiresAt.Time):
		return errors.New("key expired")
	}
	return nil
}

func (u *UI) base(c current, title, nav string) view {
	p := c.principal
	return view{Title: title, Nav: nav, CSRF: c.csrf,
		User: &userView{Name: p.Actor.Name, Roles: strings.Join(p.Roles, ", "), can: func(route string) bool { return u.can(p, route) }}}
}

// refuse answers a call the key's roles do not allow, and audits it as
// the API audits its refusals.
func (u *UI) refuse(w http.ResponseWriter, r *http.Request, c current, route string) {
	u.svc.RecordRefusal(service.Refusal{Actor: c.principal.Actor, Route: route, Status: http.StatusForbidden, Code: "forbidden",
		Reason: r.Method + " " + r.URL.Path + ": the key's roles (" + strings.Join(c.principal.Roles, ", ") + ") do not allow " + route})
	u.errorPage(w, r, http.StatusForbidden, "Not allowed",
		"Your key's roles ("+strings.Join(c.principal.Roles, ", ")+") do not allow this ("+route+").")
}

// failure renders a service error as a page, with its status.
func (u *UI) failure(w http.ResponseWriter, r *http.Request, err error) {
	var e *apperr.Error
	if errors.As(err, &e) {
		u.errorPage(w, r, apperr.HTTPStatus(e.Kind), "Could not do that", e.Message)
		return
	}
	u.log.Error("page failed", "path", LoggedPath(r.URL.Path), "error", err)
	u.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "The sidecar could not complete this; see its log.")
}

var funcs = template.FuncMap{
	"json": indented,
	"pretty": func(raw json.RawMessage) string {
		if len(raw) == 0 {
			return ""
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return string(raw)
		}
		return indented(v)
	},
	"when": func(t api.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"whenp": func(t *api.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"join": strings.Join,
	"list": func(s ...string) []string { return s },
}

// indented is v as indented JSON, as the agent sent it: not escaped for
// HTML here (\u003c would hide what a <script> argument says), since the
// template escapes every character that matters where it is shown.
func indented(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return ""
	}
	out := strings.TrimSuffix(b.String(), "\n")
	if out == "null" {
		return ""
	}
	return out
}

// left is a human duration until t.
func left(now, t time.Time) string {
	d := t.Sub(now)
	if d <= 0 {
		return "expired"
	}
	if d < time.Minute {
		return fmt.Sprintf("%d s", int(d.Seconds()))
	}
	if d < time.Hour {
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
}

// LoggedPath is a page's path as logs may write it: a signed link's
// signature (a credential: whoever holds the link decides) cut out.
func LoggedPath(path string) string {
	if strings.HasPrefix(path, ApprovePath) {
		return ApprovePath + "{id}/{signature}"
	}
	return path
}

func originOf(base string) string {
	pu, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return pu.Scheme + "://" + pu.Host
}
