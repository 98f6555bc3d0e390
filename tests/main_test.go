// Package tests holds end-to-end tests: they build the real kavach binary,
// start it on a free loopback port and drive it over HTTP and through its CLI.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

// binary is the kavach binary built once for all tests.
var binary string

// adminKey is the KAVACH_ADMIN_KEY every sidecar the tests start accepts
// (unless a test sets its own), and that cli() passes to the CLI.
const adminKey = "e2e-admin-key-0123456789abcdef0123456789"

// adminClient is a Go client of s holding the admin key.
func (s *sidecar) adminClient() *client.Client { return client.New(s.URL).WithAPIKey(adminKey) }

// mintKey creates an API key with roles through the admin key.
func (s *sidecar) mintKey(t testing.TB, name string, roles ...string) api.KeyWithSecret {
	t.Helper()
	k, err := s.adminClient().CreateKey(t.Context(), api.CreateKeyRequest{Name: name, Roles: roles})
	if err != nil {
		t.Fatalf("CreateKey(%s, %v) = %v", name, roles, err)
	}
	return k
}

// keyed is an HTTP client that sends key as its bearer credential, as an
// app calling the sidecar's API with raw HTTP would.
func keyed(key string) *http.Client {
	return &http.Client{Transport: bearerTransport{key: key, next: http.DefaultTransport}}
}

type bearerTransport struct {
	key  string
	next http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kavach-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "kavach")
	build := exec.Command("go", "build", "-o", binary, "../cmd/kavach")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kavach:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// sidecar is a running kavach serve process.
type sidecar struct {
	URL    string
	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex
	stderr bytes.Buffer
}

func (s *sidecar) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// start runs `kavach serve` on 127.0.0.1:0 and waits for /ready.
func start(t testing.TB, args ...string) *sidecar {
	t.Helper()
	s, err := startErr(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startErr(t testing.TB, args ...string) (*sidecar, error) {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is startErr with env added to the process's environment.
func startEnv(t testing.TB, env []string, args ...string) (*sidecar, error) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(cleanEnv(), "KAVACH_ADMIN_KEY="+adminKey), env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &sidecar{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.stderr.WriteString(line + "\n")
			s.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				select {
				case addr <- rec.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pipe) // after an overlong line: never block the process
	}()
	// Wait closes the pipe, so it waits for the reader to reach EOF: s.log()
	// holds everything the process wrote once s.done is closed.
	go func() { <-read; _ = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.stop(t) })
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case <-s.done:
		return nil, fmt.Errorf("kavach serve exited before listening (%v):\n%s", cmd.ProcessState, s.log())
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("kavach serve did not listen within 60s:\n%s", s.log())
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("kavach serve exited before ready:\n%s", s.log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("kavach serve not ready within 60s:\n%s", s.log())
}

// stop sends SIGTERM and waits for a clean exit.
func (s *sidecar) stop(t testing.TB) {
	t.Helper()
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("kavach serve exited with %d after SIGTERM:\n%s", code, s.log())
		}
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("kavach serve ignored SIGTERM for 30s")
	}
}

// cli runs a kavach command and returns stdout, stderr and the exit code.
func cli(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(append(cleanEnv(), "KAVACH_ADMIN_KEY="+adminKey), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("kavach %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// cleanEnv is the test's environment without KAVACH_ and OTEL_ variables,
// so a developer's own settings cannot leak into a test; the bootstrap key
// file goes to a directory of the test run's, never the developer's home.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAVACH_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return append(env, "KAVACH_ADMIN_KEY_FILE="+filepath.Join(filepath.Dir(binary), "admin-key"))
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
