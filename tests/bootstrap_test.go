package tests

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// serveBare runs `kavach serve` without KAVACH_ADMIN_KEY, as on a fresh
// machine, with the bootstrap key file in dir; it returns the sidecar's URL
// and what it printed on stdout once it is ready, and stops it at cleanup.
func serveBare(t *testing.T, dir string, env ...string) (url string, stdout func() string) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(binary, "serve", "--addr", addr, "--database", filepath.Join(dir, "kavach.db"))
	cmd.Env = append(append(cleanEnv(), "KAVACH_ADMIN_KEY_FILE="+filepath.Join(dir, "admin-key")), env...)
	var out, errb syncBuf
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := startProcess(t, cmd)
	url = "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/ready", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, out.String
			}
		}
		select {
		case <-done:
			t.Fatalf("kavach serve exited: %s", errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kavach serve not ready within 60s: %s", errb.String())
		}
	}
}

// startProcess starts cmd, stops it with SIGTERM at cleanup (killing it
// after 30 s), and returns a channel closed when it has exited.
func startProcess(t *testing.T, cmd *exec.Cmd) <-chan struct{} {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	return done
}

var keyPattern = regexp.MustCompile(`kvk_[A-Za-z0-9_-]{43}`)

// A fresh sidecar is closed, yet the README's commands work at once: the
// first start makes an admin key and writes it to a 0600 file the CLI
// reads (on a terminal it prints it too; here stdout is a pipe, as a
// container's log is, so it names the file instead); a second start makes
// none.
func TestFreshSidecarIsClosedAndBootstrapsAnAdminKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	url, stdout := serveBare(t, dir)
	file := filepath.Join(dir, "admin-key")
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("first start wrote no key file: %v\n%s", err, stdout())
	}
	b, _ := os.ReadFile(file)
	printed := strings.TrimSpace(string(b))
	if fi.Mode().Perm() != 0o600 || !keyPattern.MatchString(printed) {
		t.Errorf("key file mode %v, content %q; want 0600 holding a kvk_ key", fi.Mode().Perm(), b)
	}
	if out := stdout(); strings.Contains(out, printed) || !strings.Contains(out, file) {
		t.Errorf("stdout, not a terminal = %q; want the file named and the key not shown", out)
	}
	// Closed: nothing without the key.
	resp, err := http.Get(url + "/v1/agents")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/agents without a key = %d; want 401", resp.StatusCode)
	}
	// The CLI finds the key in the file: no flag, no env var.
	env := []string{"KAVACH_ADMIN_KEY=", "KAVACH_ADMIN_KEY_FILE=" + file, "KAVACH_SERVER=" + url}
	out, errOut, code := cli(t, env, "agent", "create", "--owner", "user-1", "--name", "n", "-p", "docs:*=read")
	if code != 0 || !strings.Contains(out, `"token"`) {
		t.Fatalf("agent create with the bootstrap key = %d %s %s; want the agent", code, out, errOut)
	}
	out, errOut, code = cli(t, env, "keys", "list")
	if code != 0 || strings.Count(out, `"id": "key_`) != 1 || strings.Contains(out, printed) {
		t.Errorf("keys list = %d %s %s; want the one bootstrap key, without its secret", code, out, errOut)
	}
	// Without any key, the CLI is refused like anyone.
	_, errOut, code = cli(t, []string{"KAVACH_ADMIN_KEY=", "KAVACH_ADMIN_KEY_FILE=" + filepath.Join(dir, "none"), "KAVACH_SERVER=" + url},
		"agent", "list")
	if code == 0 || !strings.Contains(errOut, "unauthenticated") {
		t.Errorf("agent list without a key = %d %s; want refused (unauthenticated)", code, errOut)
	}
}

func TestSecondStartMakesNoNewKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	serveBare(t, dir)
	first, err := os.ReadFile(filepath.Join(dir, "admin-key"))
	if err != nil || !keyPattern.Match(first) {
		t.Fatalf("first start's key file = %q, %v", first, err)
	}
	// The first sidecar still runs on the file; a second on the same
	// database sees the key and makes none.
	_, stdout := serveBare(t, dir)
	if strings.Contains(stdout(), "created") {
		t.Errorf("second start said %q; want nothing", stdout())
	}
	second, _ := os.ReadFile(filepath.Join(dir, "admin-key"))
	if !bytes.Equal(first, second) {
		t.Error("second start rewrote the key file")
	}
}

// Without KAVACH_ADMIN_KEY, a terminal or a writable key file, nobody could
// ever read a bootstrap key: the sidecar refuses to start, makes none, and
// a later start that can write the file bootstraps normally.
func TestNoWayToShowTheKeyStopsTheSidecar(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	blocker := filepath.Join(dir, "not-a-dir")
	writeFile(t, blocker, "x")
	_, errOut, code := cli(t, []string{"KAVACH_ADMIN_KEY=", "KAVACH_ADMIN_KEY_FILE=" + filepath.Join(blocker, "admin-key")},
		"serve", "--addr", "127.0.0.1:0", "--database", filepath.Join(dir, "kavach.db"))
	if code != 2 || !strings.Contains(errOut, "KAVACH_ADMIN_KEY") {
		t.Fatalf("serve with no way to show its key = exit %d %q; want 2 naming KAVACH_ADMIN_KEY", code, errOut)
	}
	serveBare(t, dir)
	if b, err := os.ReadFile(filepath.Join(dir, "admin-key")); err != nil || !keyPattern.Match(b) {
		t.Errorf("next start's key file = %q, %v; want a bootstrap key (none was made before)", b, err)
	}
}

// An admin key file path that names a directory (the database's, say) is
// a mistake to report, never a directory to move aside.
func TestAdminKeyFileThatIsADirectoryStopsTheSidecar(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "kavach.db")
	_, errOut, code := cli(t, []string{"KAVACH_ADMIN_KEY=", "KAVACH_ADMIN_KEY_FILE=" + dir}, "serve", "--addr", "127.0.0.1:0", "--database", db)
	if code != 2 || !strings.Contains(errOut, "not a file") {
		t.Errorf("serve with KAVACH_ADMIN_KEY_FILE a directory = exit %d %q; want 2 saying it is not a file", code, errOut)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("the directory given as the key file is gone: %v", err)
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("the database beside it is gone: %v", err)
	}
}

func TestShortAdminKeyStopsTheSidecar(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, errOut, code := cli(t, []string{"KAVACH_ADMIN_KEY=too-short"}, "serve", "--addr", "127.0.0.1:0",
		"--database", filepath.Join(dir, "kavach.db"))
	if code != 2 || !strings.Contains(errOut, "KAVACH_ADMIN_KEY") {
		t.Errorf("serve with a short KAVACH_ADMIN_KEY = exit %d %q; want 2 naming it", code, errOut)
	}
}

// syncBuf is a buffer the process writes while the test reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
