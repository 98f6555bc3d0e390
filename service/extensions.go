package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/kavach-dev/kavach/bundle"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

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

// PolicyStatus is what GET /v1/policies reports.
type PolicyStatus struct {
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
func (s *Service) Policies() PolicyStatus {
	s.ext.mu.Lock()
	defer s.ext.mu.Unlock()
	return PolicyStatus{Policies: s.engine.Policies(), ExtensionsPath: s.opts.ExtensionsPath,
		LastReloadAt: s.ext.at, LastReloadError: s.ext.lastErr}
}

// ReloadExtensions reads the extensions again and swaps them in if they
// compile; otherwise the policies in use keep serving and the error is
// kept for GET /v1/policies.
func (s *Service) ReloadExtensions(ctx context.Context) error {
	if s.opts.ExtensionsPath == "" {
		return errors.New("no policy extensions configured")
	}
	mods, err := ReadExtensions(s.opts.ExtensionsPath)
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
		s.log.Error("policy extensions not reloaded; the previous policies keep serving", "path", s.opts.ExtensionsPath, "error", err)
		return err
	}
	rev := s.engine.Policies().Revision
	s.log.Info("policy extensions reloaded", "path", s.opts.ExtensionsPath, "revision", rev)
	if _, err := s.store.RecordEvent(ctx, store.Event{Action: "extension.reload", Target: s.opts.ExtensionsPath,
		Reason: "policy extensions reloaded", Changes: map[string]any{"revision": rev}}); err != nil {
		s.log.Error("extension reload not audited", "error", err)
	}
	return nil
}

// watchExtensions reloads the extensions when their files change. Editors
// write files in several steps, so changes are debounced.
func (s *Service) watchExtensions(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Error("cannot watch policy extensions; changes need a restart", "error", err)
		return
	}
	defer w.Close()
	dir := s.opts.ExtensionsPath
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
func (s *Service) Bundle(ctx context.Context, w io.Writer) (bundle.Info, error) {
	seq, err := s.store.LatestChange(ctx)
	if err != nil {
		return bundle.Info{}, err
	}
	// The extensions being served, not what is on disk (a failed reload
	// leaves the two apart).
	return bundle.Build(ctx, s.store, bundle.Options{Revision: seq, Extensions: s.engine.Extensions()}, w)
}
