// Package policy loads the decision policies: user extensions read from a
// directory or bundle and reloaded on change, and the OPA bundle of what
// is in use.
package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/kavach-dev/kavach/bundle"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

// Store is what policy loading reads and writes: the data a bundle
// carries, the change feed's position, and the audit event of a reload.
type Store interface {
	engine.Source
	LatestChange(ctx context.Context) (int64, error)
	RecordEvent(ctx context.Context, e store.Event) (domain.AuditEntry, error)
}

// Policy is safe for concurrent use.
type Policy struct {
	store  Store
	engine *engine.Engine
	// path is the directory or bundle the engine's extensions were read
	// from; "" if none.
	path string
	ext  extensionState
	now  func() time.Time
	log  *slog.Logger
}

// New returns policy loading for eng, whose extensions were read from
// path ("" if none).
func New(st Store, eng *engine.Engine, path string, now func() time.Time, log *slog.Logger) *Policy {
	return &Policy{store: st, engine: eng, path: path, now: now, log: log}
}

// Run reloads the extensions when their files change, until ctx ends.
func (s *Policy) Run(ctx context.Context) {
	if s.path != "" {
		s.watchExtensions(ctx)
	}
}

// ReadExtensions reads user policy extensions from path: a directory of
// .rego files (tests, *_test.rego, are skipped: they run under `opa test`),
// or an OPA bundle file (.tar.gz). The result maps file names to sources.
func ReadExtensions(path string) (map[string]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("policy extensions: %w", err)
	}
	if !info.IsDir() {
		f, err := os.Open(path) //nolint:gosec // G304: the policy extensions bundle the operator configured
		if err != nil {
			return nil, fmt.Errorf("policy extensions: %w", err)
		}
		defer f.Close()
		mods, err := bundle.Read(f)
		if err != nil {
			return nil, fmt.Errorf("policy extensions %s: %w", path, err)
		}
		return mods, nil
	}
	mods := map[string]string{}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, "_test.rego") {
			return nil
		}
		b, err := os.ReadFile(p) //nolint:gosec // G304: a .rego file under the extensions directory the operator configured
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		mods[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("policy extensions %s: %w", path, err)
	}
	return mods, nil
}

// Status is what GET /v1/policies reports.
type Status struct {
	engine.Policies
	ExtensionsPath  string     `json:"extensionsPath,omitempty"`
	LastReloadAt    *time.Time `json:"lastReloadAt,omitempty"`
	LastReloadError string     `json:"lastReloadError,omitempty"`
}

// extensionState remembers the outcome of the last reload.
type extensionState struct {
	mu      sync.Mutex
	at      *time.Time
	lastErr string
}

// Policies describes the loaded policies.
func (s *Policy) Policies() Status {
	s.ext.mu.Lock()
	defer s.ext.mu.Unlock()
	return Status{Policies: s.engine.Policies(), ExtensionsPath: s.path,
		LastReloadAt: s.ext.at, LastReloadError: s.ext.lastErr}
}

// ReloadExtensions reads the extensions again and swaps them in if they
// compile; otherwise the policies in use keep serving and the error is
// kept for GET /v1/policies.
func (s *Policy) ReloadExtensions(ctx context.Context) error {
	if s.path == "" {
		return errors.New("no policy extensions configured")
	}
	mods, err := ReadExtensions(s.path)
	if err == nil {
		err = s.engine.SetExtensions(ctx, mods)
	}
	now := s.now().UTC()
	s.ext.mu.Lock()
	s.ext.at = &now
	s.ext.lastErr = ""
	if err != nil {
		s.ext.lastErr = err.Error()
	}
	s.ext.mu.Unlock()
	if err != nil {
		s.log.Error("policy extensions not reloaded; the previous policies keep serving", "path", s.path, "error", err)
		return err
	}
	rev := s.engine.Policies().Revision
	s.log.Info("policy extensions reloaded", "path", s.path, "revision", rev)
	if _, err := s.store.RecordEvent(ctx, store.Event{Action: "extension.reload", Target: s.path,
		Reason: "policy extensions reloaded", Changes: map[string]any{"revision": rev}}); err != nil {
		s.log.Error("extension reload not audited", "error", err)
	}
	return nil
}

// watchExtensions reloads the extensions when their files change. Editors
// write files in several steps, so changes are debounced.
func (s *Policy) watchExtensions(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Error("cannot watch policy extensions; changes need a restart", "error", err)
		return
	}
	defer w.Close()
	dir := s.path
	if info, err := os.Stat(dir); err == nil && !info.IsDir() {
		dir = filepath.Dir(dir)
	}
	// Every directory below, since fsnotify does not recurse.
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = w.Add(p)
		}
		return nil
	})
	const debounce = 200 * time.Millisecond
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
					_ = w.Add(ev.Name)
				}
			}
			timer = time.After(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.log.Warn("watching policy extensions", "error", err)
		case <-timer:
			timer = nil
			_ = s.ReloadExtensions(ctx)
		}
	}
}

// Bundle writes an OPA bundle of the policies in use (core and extensions)
// and a snapshot of the data; its revision is the change-feed sequence read
// before the snapshot.
func (s *Policy) Bundle(ctx context.Context, w io.Writer) (bundle.Info, error) {
	seq, err := s.store.LatestChange(ctx)
	if err != nil {
		return bundle.Info{}, err
	}
	// The extensions being served, not what is on disk (a failed reload
	// leaves the two apart).
	return bundle.Build(ctx, s.store, bundle.Options{Revision: seq, Extensions: s.engine.Extensions()}, w)
}
