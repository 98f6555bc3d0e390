package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
)

// The README's walkthroughs are run as a reader would type them, and what
// each block prints is compared with what the README shows below it, so the
// README cannot drift from the binary. A walkthrough is the part of the
// README between <!-- walkthrough: NAME --> and <!-- end: NAME -->: every
// ```sh block in it runs, in order, in one shell; the ```json or ```text
// block right after one is what it must print (a block with none must print
// nothing). IDs, tokens, keys, hashes and times differ on every run, so both
// sides are normalised before they are compared: the n-th distinct agent ID
// becomes agt#n on each side (so an ID that recurs must recur), and so on.

// docBlock is one fenced code block of a Markdown file.
type docBlock struct {
	lang, body string
	line       int // where its fence opens, for messages
}

// docStep is a command block and what it must print.
type docStep struct {
	cmd  docBlock
	want *docBlock // nil: it prints nothing
}

// walkthrough returns the steps of the walkthrough name in the Markdown file.
func walkthrough(t *testing.T, file, name string) []docStep {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	begin, end := "<!-- walkthrough: "+name+" -->", "<!-- end: "+name+" -->"
	var blocks []docBlock
	in, ended := false, false
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		switch {
		case l == begin:
			in = true
		case l == end && in:
			in, ended = false, true
		case in && strings.HasPrefix(l, "```"):
			b := docBlock{lang: strings.TrimPrefix(l, "```"), line: i + 1}
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				body = append(body, lines[i])
			}
			if i == len(lines) {
				t.Fatalf("%s:%d: the code block never closes", file, b.line)
			}
			b.body = strings.Join(body, "\n")
			blocks = append(blocks, b)
		}
	}
	if !ended {
		t.Fatalf("%s: no walkthrough %q (%s … %s)", file, name, begin, end)
	}
	var steps []docStep
	for i := 0; i < len(blocks); i++ {
		b := blocks[i]
		if b.lang != "sh" {
			t.Fatalf("%s:%d: a ```%s block with no ```sh block before it", file, b.line, b.lang)
		}
		s := docStep{cmd: b}
		if i+1 < len(blocks) && (blocks[i+1].lang == "json" || blocks[i+1].lang == "text") {
			i++
			s.want = &blocks[i]
		}
		steps = append(steps, s)
	}
	return steps
}

// runWalkthrough runs the steps in one bash process in dir, with env, and
// returns what each step printed (stdout and stderr together).
func runWalkthrough(t *testing.T, dir string, env []string, steps []docStep, rewrite func(string) string) []string {
	t.Helper()
	marker := fmt.Sprintf("@@step-%d@@", time.Now().UnixNano())
	var script strings.Builder
	script.WriteString("exec 2>&1\n")
	for i, s := range steps {
		fmt.Fprintf(&script, "printf '\\n%s %d\\n'\n%s\n", marker, i, rewrite(s.cmd.body))
	}
	fmt.Fprintf(&script, "printf '\\n%s end\\n'\n", marker)
	path := filepath.Join(dir, "walkthrough.sh")
	writeFile(t, path, script.String())
	cmd := exec.CommandContext(t.Context(), "bash", "--noprofile", "--norc", path)
	cmd.Dir, cmd.Env = dir, env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the walkthrough's shell failed: %v\n%s", err, out)
	}
	parts := strings.Split(string(out), "\n"+marker+" ")
	got := make([]string, len(steps))
	for _, p := range parts[1:] {
		n, rest, _ := strings.Cut(p, "\n")
		if i, err := strconv.Atoi(n); err == nil && i < len(got) {
			got[i] = rest
		}
	}
	if last := parts[len(parts)-1]; !strings.HasPrefix(last, "end") {
		t.Fatalf("the walkthrough stopped early:\n%s", out)
	}
	return got
}

// normaliser replaces what differs on every run by stable placeholders.
type normaliser struct {
	seen map[string]string
	next map[string]int
}

var (
	volatileID = regexp.MustCompile(`\b(agt|aud|apr|dlg|key|chn)_[0-9A-Z]{26}\b|\bkvk?_[A-Za-z0-9_-]{43}|\bp_[0-9a-f]{16}\b`)
	volatileTS = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	sha256Hex  = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
)

func newNormaliser() *normaliser {
	return &normaliser{seen: map[string]string{}, next: map[string]int{}}
}

func (n *normaliser) text(s string) string {
	s = sha256Hex.ReplaceAllString(s, "<sha256>")
	s = volatileTS.ReplaceAllString(s, "<time>")
	return volatileID.ReplaceAllStringFunc(s, func(id string) string {
		if p, ok := n.seen[id]; ok {
			return p
		}
		prefix, _, _ := strings.Cut(id, "_")
		n.next[prefix]++
		p := fmt.Sprintf("%s#%d", prefix, n.next[prefix])
		n.seen[id] = p
		return p
	})
}

// volatileFields are numbers that differ on every run.
var volatileFields = []string{"durationUs", "chainSeq", "lastSyncAgeMs"}

func (n *normaliser) value(v any) any {
	switch v := v.(type) {
	case string:
		return n.text(v)
	case []any:
		for i := range v {
			v[i] = n.value(v[i])
		}
	case map[string]any:
		// Keys in a stable order, so IDs are numbered as they appear.
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if slices.Contains(volatileFields, k) {
				v[k] = "<n>"
				continue
			}
			v[k] = n.value(v[k])
		}
	}
	return v
}

// jsonValues decodes a stream of JSON values.
func jsonValues(s string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var out []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
}

// compareStep reports how got differs from what step shows.
func compareStep(file string, step docStep, got string, wantN, gotN *normaliser) string {
	got = strings.TrimSpace(got)
	if step.want == nil {
		if got != "" {
			return fmt.Sprintf("%s:%d: the block printed\n%s\nbut the README shows no output", file, step.cmd.line, got)
		}
		return ""
	}
	want := strings.TrimSpace(step.want.body)
	if step.want.lang == "text" {
		w, g := wantN.text(want), gotN.text(got)
		if w != g {
			return fmt.Sprintf("%s:%d: printed (normalised)\n%s\nREADME shows (normalised)\n%s", file, step.want.line, g, w)
		}
		return ""
	}
	wv, err := jsonValues(want)
	if err != nil {
		return fmt.Sprintf("%s:%d: the document's JSON does not parse: %v; the block printed\n%s", file, step.want.line, err, got)
	}
	gv, err := jsonValues(got)
	if err != nil {
		return fmt.Sprintf("%s:%d: the block printed something that is not JSON (%v):\n%s", file, step.cmd.line, err, got)
	}
	for i := range wv {
		wv[i] = wantN.value(wv[i])
	}
	for i := range gv {
		gv[i] = gotN.value(gv[i])
	}
	if !reflect.DeepEqual(wv, gv) {
		return fmt.Sprintf("%s:%d: printed (normalised)\n%s\nREADME shows (normalised)\n%s", file, step.want.line, indentJSON(gv), indentJSON(wv))
	}
	return ""
}

func indentJSON(vs []any) string {
	var b bytes.Buffer
	for _, v := range vs {
		out, _ := json.MarshalIndent(v, "", "  ")
		b.Write(out)
		b.WriteByte('\n')
	}
	return b.String()
}

// serveAsReader starts `kavach serve` as the README's first command does on
// a fresh machine: no KAVACH_ variable, the working directory dir (so the
// database is ./kavach.db) and HOME dir (so the bootstrap key goes to
// ~/.config/kavach/admin-key); only the port is free rather than 7400.
func serveAsReader(t *testing.T, dir string, env []string) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(binary, "serve", "--addr", addr)
	cmd.Dir, cmd.Env = dir, env
	var logs syncBuf
	cmd.Stdout, cmd.Stderr = &logs, &logs
	done := startProcess(t, cmd)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/ready", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		select {
		case <-done:
			t.Fatalf("kavach serve exited:\n%s", logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("kavach serve not ready within 60s:\n%s", logs.String())
	return ""
}

// readerEnv is the environment of a fresh machine: no KAVACH_ variable,
// HOME in dir, and the kavach binary on PATH.
func readerEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAVACH_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+dir, "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// TestReadmeQuickstart runs the README's curl quickstart against the real
// binary, block by block, and compares what each block prints with what
// the README shows.
func TestReadmeQuickstart(t *testing.T) {
	t.Parallel()
	testWalkthrough(t, "../README.md", "curl", 10)
}

// TestDocsWalkthroughs runs the reference's examples the same way: each
// walkthrough on a fresh sidecar.
func TestDocsWalkthroughs(t *testing.T) {
	t.Parallel()
	for _, w := range []struct{ file, name string }{
		{"../docs/policies.md", "policies"},
		{"../docs/operations.md", "operations"},
	} {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			testWalkthrough(t, w.file, w.name, 1)
		})
	}
}

// testWalkthrough runs the walkthrough name of file on a sidecar started
// as a reader would start it, and fails on every block whose output
// differs from the file's.
func testWalkthrough(t *testing.T, file, name string, minSteps int) {
	t.Helper()
	for _, tool := range []string{"curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the walkthroughs need %s: install it (apt-get install -y %s)", tool, tool)
		}
	}
	steps := walkthrough(t, file, name)
	if len(steps) < minSteps {
		t.Fatalf("%s: the walkthrough %q has %d steps; want at least %d", file, name, len(steps), minSteps)
	}
	dir := t.TempDir()
	env := readerEnv(dir)
	addr := serveAsReader(t, dir, env)
	got := runWalkthrough(t, dir, env, steps, func(cmd string) string {
		return strings.ReplaceAll(cmd, "localhost:7400", addr)
	})
	if *updateDocs {
		rewriteOutputs(t, file, steps, got)
		return
	}
	wantN, gotN := newNormaliser(), newNormaliser()
	for i, s := range steps {
		if diff := compareStep(file, s, got[i], wantN, gotN); diff != "" {
			t.Errorf("step %d:\n%s", i+1, diff)
		}
	}
}

var updateDocs = flag.Bool("update-docs", false, "rewrite the walkthroughs' output blocks with what the commands print now (then read the diff)")

// rewriteOutputs replaces each output block of file with what its command
// printed: JSON values one per line when short, indented when not.
func rewriteOutputs(t *testing.T, file string, steps []docStep, got []string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for i := len(steps) - 1; i >= 0; i-- {
		w := steps[i].want
		if w == nil {
			continue
		}
		out := strings.TrimSpace(got[i])
		if w.lang == "json" {
			var parts []string
			dec := json.NewDecoder(strings.NewReader(out))
			for {
				var v json.RawMessage
				if err := dec.Decode(&v); err != nil {
					break
				}
				var b bytes.Buffer
				if len(v) > 100 || bytes.ContainsRune(v, '\n') {
					_ = json.Indent(&b, v, "", "  ")
				} else {
					b.Write(v)
				}
				parts = append(parts, b.String())
			}
			out = strings.Join(parts, "\n")
		}
		n := strings.Count(w.body, "\n") + 1
		if w.body == "" {
			n = 0
		}
		lines = slices.Replace(lines, w.line, w.line+n, strings.Split(out, "\n")...)
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644); err != nil { //nolint:gosec // G306: documentation
		t.Fatal(err)
	}
	t.Logf("%s: output blocks rewritten; read the diff", file)
}

// TestReadmeGoExample holds the README's Go code to the example program
// it quotes, and runs that program against the real binary: allowed,
// denied, and refused for a token that is no good.
func TestReadmeGoExample(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const mark = "<!-- example: "
	md := string(raw)
	i := strings.Index(md, mark)
	if i < 0 {
		t.Fatal("README.md quotes no example program (<!-- example: path -->)")
	}
	path, rest, _ := strings.Cut(md[i+len(mark):], " -->")
	if next := strings.Index(rest, "\n## "); next >= 0 {
		rest = rest[:next]
	}
	src, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	quoted := 0
	for _, part := range strings.Split(rest, "```go\n")[1:] {
		code, _, ok := strings.Cut(part, "\n```")
		if !ok {
			t.Fatalf("README.md: an unclosed go block quoting %s", path)
		}
		quoted++
		if !strings.Contains(string(src), code+"\n") {
			t.Errorf("README.md quotes code that is not in %s:\n%s", path, code)
		}
	}
	if quoted == 0 {
		t.Fatalf("README.md: no go block after %s%s -->", mark, path)
	}

	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	admin := s.adminClient()
	a, err := admin.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "user-123", Name: "github-reader",
		Permissions: []api.Permission{{Resource: "mcp:github:issues", Actions: []string{"read", "comment"}}}})
	if err != nil {
		t.Fatal(err)
	}
	app := s.mintKey(t, "my-app", "decider")
	prog := filepath.Join(t.TempDir(), "app")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", prog, "../"+filepath.Dir(path)).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", path, err, out)
	}
	run := func(token string, args ...string) (string, int) {
		cmd := exec.CommandContext(t.Context(), prog, args...)
		cmd.Env = append(cleanEnv(), "KAVACH_SERVER="+s.URL, "KAVACH_API_KEY="+app.Key, "KAVACH_AGENT_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("%s: %v\n%s", path, err, out)
		}
		return strings.TrimSpace(string(out)), cmd.ProcessState.ExitCode()
	}
	for _, c := range []struct {
		token, action string
		want          string
		code          int
	}{
		{a.Token, "comment", "allowed: the app runs comment on mcp:github:issues", 0},
		{a.Token, "close", `refused: denied (no_permission): no permission of agent "` + a.ID + `" allows "close" on "mcp:github:issues"`, 1},
		{"kv_" + strings.Repeat("A", 43), "comment", "refused: denied (invalid_token): the bearer token does not belong to any agent", 1},
		{"kv_not-a-token", "comment", "refused: kavach refused the request (malformed_token): the bearer token is not a Kavach agent token (kv_ followed by 43 base64url characters)", 1},
	} {
		out, code := run(c.token, c.action, "mcp:github:issues", `{"issue":42}`)
		if out != c.want || code != c.code {
			t.Errorf("app %s = %q, exit %d; want %q, exit %d", c.action, out, code, c.want, c.code)
		}
	}
}

// TestEveryServeFlagIsDocumented: the configuration reference's flag
// table names every flag `kavach serve` takes.
func TestEveryServeFlagIsDocumented(t *testing.T) {
	t.Parallel()
	out, _, code := cli(t, nil, "serve", "--help")
	if code != 0 {
		t.Fatalf("kavach serve --help exited %d", code)
	}
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, l := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(l, "| `--") || strings.HasPrefix(l, "| |") {
			rows = append(rows, l)
		}
	}
	flags := regexp.MustCompile(`(?m)^\s+--([a-z][a-z-]*)`).FindAllStringSubmatch(out, -1)
	if len(flags) < 10 {
		t.Fatalf("kavach serve --help lists %d flags:\n%s", len(flags), out)
	}
	for _, f := range flags {
		if f[1] == "help" {
			continue
		}
		if !slices.ContainsFunc(rows, func(r string) bool { return strings.Contains(r, "`--"+f[1]+"`") }) {
			t.Errorf("docs/configuration.md's flag table has no row for --%s", f[1])
		}
	}
	for _, env := range regexp.MustCompile(`\$(KAVACH_[A-Z_]+)`).FindAllStringSubmatch(out, -1) {
		if !slices.ContainsFunc(rows, func(r string) bool { return strings.Contains(r, "`"+env[1]+"`") }) {
			t.Errorf("docs/configuration.md's flag table does not name %s", env[1])
		}
	}
}
