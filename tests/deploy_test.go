package tests

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The parts of Kubernetes objects the deploy checks read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name        string            `yaml:"name"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec       podSpec           `yaml:"spec"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

type podSpec struct {
	InitContainers []k8sContainer `yaml:"initContainers"`
	Containers     []k8sContainer `yaml:"containers"`
	Volumes        []struct {
		Name     string          `yaml:"name"`
		EmptyDir *map[string]any `yaml:"emptyDir"`
		PVC      *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}

type k8sContainer struct {
	Name          string   `yaml:"name"`
	RestartPolicy string   `yaml:"restartPolicy"`
	Command       []string `yaml:"command"`
	Args          []string `yaml:"args"`
	Env           []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports          []k8sPort  `yaml:"ports"`
	StartupProbe   *k8sProbe  `yaml:"startupProbe"`
	ReadinessProbe *k8sProbe  `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe  `yaml:"livenessProbe"`
	VolumeMounts   []k8sMount `yaml:"volumeMounts"`
}

type k8sPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
}

type k8sMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}

type k8sProbe struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a number or a port's name
	} `yaml:"httpGet"`
}

// env is the value of a plain environment variable, "" if unset.
func (c k8sContainer) env(name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// mounts reports whether c mounts the volume named v.
func (c k8sContainer) mounts(v string) bool {
	return slices.ContainsFunc(c.VolumeMounts, func(m k8sMount) bool { return m.Name == v })
}

// decodeObjects reads every document of a YAML stream.
func decodeObjects(text string) ([]k8sObject, error) {
	dec := yaml.NewDecoder(strings.NewReader(text))
	var out []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if o.Kind != "" {
			out = append(out, o)
		}
	}
}

// cliNames are the environment variables and flags the CLI knows, read
// from the built binary's help.
type cliNames struct {
	serveEnv, serveFlags, clientEnv map[string]bool
}

var (
	helpEnv  = regexp.MustCompile(`\$(KAVACH_[A-Z0-9_]+)`)
	helpFlag = regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)`)
)

func readCLINames(t *testing.T) cliNames {
	t.Helper()
	help := func(args ...string) string {
		out, stderr, code := cli(t, nil, append(args, "--help")...)
		if code != 0 {
			t.Fatalf("kavach %s --help = exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		return out
	}
	set := func(re *regexp.Regexp, text string) map[string]bool {
		m := map[string]bool{}
		for _, s := range re.FindAllStringSubmatch(text, -1) {
			m[s[1]] = true
		}
		return m
	}
	serve := help("serve")
	n := cliNames{serveEnv: set(helpEnv, serve), serveFlags: set(helpFlag, serve), clientEnv: set(helpEnv, help("status"))}
	// The checks below would pass vacuously on a help text they cannot read.
	for _, want := range []string{"KAVACH_ADDR", "KAVACH_DIAGNOSTIC_ADDR", "KAVACH_ADMIN_KEY"} {
		if !n.serveEnv[want] {
			t.Fatalf("kavach serve --help does not name $%s:\n%s", want, serve)
		}
	}
	if !n.serveFlags["diagnostic-addr"] || !n.clientEnv["KAVACH_SERVER"] {
		t.Fatalf("the help texts lack --diagnostic-addr or $KAVACH_SERVER: %v %v", n.serveFlags, n.clientEnv)
	}
	return n
}

// portOf is the port of a TCP listen address.
func portOf(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

// flagValue returns the value given to --name in args, "" if none.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// emptyDirWarning is the comment the manifest must keep beside its SQLite
// alternative.
var emptyDirWarning = regexp.MustCompile(`(?m)^#.*never put kavach-data on an emptyDir`)

// checkPod returns what is wrong with the pod manifest pod, the Secrets
// secrets defines and the CLI names n: each problem as a sentence.
func checkPod(pod, secrets string, n cliNames) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	objs, err := decodeObjects(pod + "\n---\n" + secrets)
	if err != nil {
		return []string{fmt.Sprintf("the manifests do not parse: %v", err)}
	}
	secretKeys := map[string]map[string]bool{}
	claims := map[string]bool{}
	var pods []k8sObject
	for _, o := range objs {
		switch o.Kind {
		case "Secret":
			keys := map[string]bool{}
			for k := range o.Data {
				keys[k] = true
			}
			for k := range o.StringData {
				keys[k] = true
			}
			secretKeys[o.Metadata.Name] = keys
		case "PersistentVolumeClaim":
			claims[o.Metadata.Name] = true
		case "Pod":
			pods = append(pods, o)
		}
	}
	if len(pods) != 1 {
		return append(problems, fmt.Sprintf("%d Pods in deploy/pod.yaml; want 1", len(pods)))
	}
	p := pods[0]
	spec := p.Spec
	find := func(cs []k8sContainer, name string) (k8sContainer, bool) {
		i := slices.IndexFunc(cs, func(c k8sContainer) bool { return c.Name == name })
		if i < 0 {
			return k8sContainer{}, false
		}
		return cs[i], true
	}

	// kavach: a native sidecar.
	kv, ok := find(spec.InitContainers, "kavach")
	switch plain, inContainers := find(spec.Containers, "kavach"); {
	case inContainers:
		bad("kavach is in containers: it belongs in initContainers with restartPolicy Always, a native sidecar that starts before the app and stops after it")
		kv = plain // checked all the same
	case !ok:
		return append(problems, "no container named kavach in initContainers")
	case kv.RestartPolicy != "Always":
		bad("kavach's restartPolicy is %q; want Always (a native sidecar, Kubernetes 1.29+)", kv.RestartPolicy)
	}

	// The flags and environment variables it is given exist.
	if len(kv.Command) > 0 {
		bad("kavach sets command %q: leave the image's entrypoint", kv.Command)
	}
	if len(kv.Args) == 0 || kv.Args[0] != "serve" {
		bad("kavach's args %q do not start with serve", kv.Args)
	}
	for _, a := range kv.Args {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			if !n.serveFlags[name] {
				bad("kavach's args pass --%s, which kavach serve does not have", name)
			}
		}
	}
	for _, e := range kv.Env {
		// KAVACH_SERVER and KAVACH_API_KEY serve `kubectl exec … kavach …`.
		if strings.HasPrefix(e.Name, "KAVACH_") && !n.serveEnv[e.Name] && !n.clientEnv[e.Name] {
			bad("kavach's env sets %s, which no kavach command reads", e.Name)
		}
	}
	for _, c := range spec.Containers {
		for _, e := range c.Env {
			if c.Name != "kavach" && strings.HasPrefix(e.Name, "KAVACH_") && !n.clientEnv[e.Name] {
				bad("%s's env sets %s, which the kavach client does not read", c.Name, e.Name)
			}
		}
	}

	// The diagnostic listener: its port, named and annotated.
	diag := kv.env("KAVACH_DIAGNOSTIC_ADDR")
	if v := flagValue(kv.Args, "diagnostic-addr"); v != "" {
		diag = v
	}
	port, err := portOf(diag)
	if err != nil {
		bad("kavach has no diagnostic listener (KAVACH_DIAGNOSTIC_ADDR or --diagnostic-addr host:port): %q, %v", diag, err)
	}
	if !slices.Contains(kv.Ports, k8sPort{Name: "diagnostic", ContainerPort: port}) {
		bad("kavach has no container port named diagnostic with the diagnostic listener's port %d: %+v", port, kv.Ports)
	}
	a := p.Metadata.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != strconv.Itoa(port) || a["prometheus.io/path"] != "/metrics" {
		bad("the scrape annotations are %q; want prometheus.io/scrape \"true\", prometheus.io/port %q, prometheus.io/path /metrics",
			a, strconv.Itoa(port))
	}

	// Probes: HTTP on the diagnostic port; liveness never asks the database.
	for _, pr := range []struct {
		name  string
		probe *k8sProbe
		paths []string
	}{
		{"livenessProbe", kv.LivenessProbe, []string{"/health"}},
		{"readinessProbe", kv.ReadinessProbe, []string{"/ready"}},
		{"startupProbe", kv.StartupProbe, []string{"/ready", "/health"}},
	} {
		switch {
		case pr.probe == nil:
			bad("kavach has no %s", pr.name)
		case pr.probe.Exec != nil:
			bad("kavach's %s execs %q; want an httpGet on the diagnostic port", pr.name, pr.probe.Exec.Command)
		case pr.probe.HTTPGet == nil:
			bad("kavach's %s is not an httpGet", pr.name)
		case !slices.Contains(pr.paths, pr.probe.HTTPGet.Path):
			bad("kavach's %s gets %s; want %s", pr.name, pr.probe.HTTPGet.Path, strings.Join(pr.paths, " or "))
		case fmt.Sprint(pr.probe.HTTPGet.Port) != "diagnostic" && fmt.Sprint(pr.probe.HTTPGet.Port) != strconv.Itoa(port):
			bad("kavach's %s targets port %v; want diagnostic (%d)", pr.name, pr.probe.HTTPGet.Port, port)
		}
	}

	// Every Secret referenced is defined, with the key read.
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for _, e := range c.Env {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			if keys, ok := secretKeys[ref.Name]; !ok {
				bad("%s's %s reads Secret %s, which deploy/ does not define", c.Name, e.Name, ref.Name)
			} else if !keys[ref.Key] {
				bad("%s's %s reads key %s of Secret %s, which has no such key", c.Name, e.Name, ref.Key, ref.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil && secretKeys[ef.SecretRef.Name] == nil {
				bad("%s reads Secret %s, which deploy/ does not define", c.Name, ef.SecretRef.Name)
			}
		}
	}

	// The socket: on a volume the app mounts and agent-tools does not.
	socket := strings.TrimPrefix(kv.env("KAVACH_ADDR"), "unix://")
	if socket == kv.env("KAVACH_ADDR") {
		bad("kavach's KAVACH_ADDR %q is not a unix:// socket", kv.env("KAVACH_ADDR"))
	}
	socketVolume := ""
	for _, m := range kv.VolumeMounts {
		if m.MountPath == path.Dir(socket) {
			socketVolume = m.Name
		}
	}
	if socketVolume == "" {
		bad("kavach mounts no volume at %s, the socket's directory", path.Dir(socket))
	}
	if app, ok := find(spec.Containers, "app"); !ok || !app.mounts(socketVolume) {
		bad("the app does not mount the socket volume %q", socketVolume)
	} else if app.env("KAVACH_SERVER") != kv.env("KAVACH_ADDR") {
		bad("the app's KAVACH_SERVER %q is not kavach's KAVACH_ADDR %q", app.env("KAVACH_SERVER"), kv.env("KAVACH_ADDR"))
	}
	tools, ok := find(spec.Containers, "agent-tools")
	if !ok {
		bad("no agent-tools container")
	}
	if tools.mounts(socketVolume) {
		bad("agent-tools mounts the socket volume %q: the agents could reach the API", socketVolume)
	}
	for _, e := range tools.Env {
		if e.ValueFrom != nil || strings.HasPrefix(e.Name, "KAVACH_") {
			bad("agent-tools is given %s: the agents hold no credential and no address of the sidecar", e.Name)
		}
	}

	// Kavach's data outlives the pod: no emptyDir but the socket's.
	for _, v := range spec.Volumes {
		if v.Name != socketVolume && v.EmptyDir != nil && kv.mounts(v.Name) {
			bad("volume %s of kavach is an emptyDir: a reschedule would lose every agent, key and audit row", v.Name)
		}
		if v.PVC != nil && !claims[v.PVC.ClaimName] {
			bad("volume %s claims %s, which deploy/ does not define", v.Name, v.PVC.ClaimName)
		}
	}
	if !emptyDirWarning.MatchString(pod) {
		bad("deploy/pod.yaml lacks the comment warning never to put kavach-data on an emptyDir")
	}
	return problems
}

// checkDockerfile returns what is wrong with the Dockerfile's ENV and
// EXPOSE: every KAVACH_ variable is one kavach serve reads, and the one
// port exposed is the diagnostic listener's.
func checkDockerfile(dockerfile string, n cliNames) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	env := map[string]string{}
	var exposed []string
	sc := bufio.NewScanner(strings.NewReader(dockerfile))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "ENV":
			for _, kv := range fields[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					bad("ENV %s: write ENV NAME=value", kv)
					continue
				}
				env[k] = v
				if strings.HasPrefix(k, "KAVACH_") && !n.serveEnv[k] {
					bad("the Dockerfile sets %s, which kavach serve does not read", k)
				}
			}
		case "EXPOSE":
			exposed = append(exposed, fields[1:]...)
		}
	}
	diag, ok := env["KAVACH_DIAGNOSTIC_ADDR"]
	port, err := portOf(diag)
	switch {
	case !ok && len(exposed) > 0:
		bad("the Dockerfile exposes %q but enables no diagnostic listener: the API is on loopback", exposed)
	case ok && err != nil:
		bad("the Dockerfile's KAVACH_DIAGNOSTIC_ADDR %q is not host:port: %v", diag, err)
	case ok && !slices.Equal(exposed, []string{strconv.Itoa(port)}):
		bad("the Dockerfile exposes %q; want only the diagnostic port %d", exposed, port)
	}
	return problems
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// deploy/pod.yaml and the Dockerfile say what the binary does: a native
// sidecar, probes and scrapes on the diagnostic listener, flags and
// environment variables that exist, Secrets that are defined, a socket out
// of the agents' reach, no data on an emptyDir.
func TestDeployManifests(t *testing.T) {
	t.Parallel()
	n := readCLINames(t)
	pod, secrets := readRepoFile(t, "deploy/pod.yaml"), readRepoFile(t, "deploy/secrets.yaml")
	for _, p := range checkPod(pod, secrets, n) {
		t.Errorf("deploy: %s", p)
	}
	for _, p := range checkDockerfile(readRepoFile(t, "Dockerfile"), n) {
		t.Errorf("Dockerfile: %s", p)
	}

	// The checks catch what they are for: each change below of the real
	// manifest is found.
	type edit struct{ old, new string }
	for _, tt := range []struct {
		name  string
		edits []edit
		want  string
	}{
		{"a flag that does not exist", []edit{{`args: ["serve"]`, `args: ["serve", "--diagnostics-addr", ":9400"]`}}, "--diagnostics-addr"},
		{"an env var that does not exist", []edit{{"name: KAVACH_DIAGNOSTIC_ADDR", "name: KAVACH_DIAGNOSTICS_ADDR"}}, "KAVACH_DIAGNOSTICS_ADDR"},
		{"kavach as a plain container", []edit{{"      restartPolicy: Always\n", "      restartPolicy: Never\n"}}, "restartPolicy"},
		{"an exec liveness probe", []edit{{"livenessProbe:\n        httpGet:\n          path: /health\n          port: diagnostic",
			"livenessProbe:\n        exec:\n          command: [\"/usr/local/bin/kavach\", \"status\", \"--ready\"]"}}, "livenessProbe execs"},
		{"liveness on /ready", []edit{{"path: /health", "path: /ready"}}, "livenessProbe gets /ready"},
		{"a scrape port that is not the listener's", []edit{{`prometheus.io/port: "9400"`, `prometheus.io/port: "9401"`}}, "scrape annotations"},
		{"a listener port apart from the named one", []edit{{`value: ":9400"`, `value: ":9500"`}}, "named diagnostic"},
		{"an undefined Secret", []edit{{"name: kavach-db\n", "name: kavach-database\n"}}, "Secret kavach-database"},
		{"agent-tools with the socket", []edit{{"      image: registry.example.com/my-agent-tools:1.0.0\n",
			"      image: registry.example.com/my-agent-tools:1.0.0\n      volumeMounts:\n        - name: kavach-socket\n          mountPath: /var/run/kavach\n"}},
			"agent-tools mounts the socket"},
		{"data on an emptyDir", []edit{
			{"        # - name: kavach-data\n        #   mountPath: /var/lib/kavach\n", "        - name: kavach-data\n          mountPath: /var/lib/kavach\n"},
			{"  volumes:\n", "  volumes:\n    - name: kavach-data\n      emptyDir: {}\n"},
		}, "volume kavach-data of kavach is an emptyDir"},
		{"the warning dropped", []edit{{"never put kavach-data on an emptyDir", "use an emptyDir"}}, "lacks the comment"},
	} {
		mutated := pod
		for _, e := range tt.edits {
			before := mutated
			if mutated = strings.Replace(mutated, e.old, e.new, 1); mutated == before {
				t.Fatalf("%s: %q is not in deploy/pod.yaml; update the test", tt.name, e.old)
			}
		}
		problems := checkPod(mutated, secrets, n)
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
			t.Errorf("deploy/pod.yaml with %s: problems %q; want one saying %q", tt.name, problems, tt.want)
		}
	}
	if p := checkDockerfile("ENV KAVACH_DIAGNOSTIC_ADDR=:9400\nEXPOSE 7400\n", n); len(p) == 0 {
		t.Error("a Dockerfile exposing 7400 passes the check; want it refused")
	}
	if p := checkDockerfile("ENV KAVACH_DIAGNOSTICS=:9400\n", n); len(p) == 0 {
		t.Error("a Dockerfile setting an unknown KAVACH_ variable passes the check; want it refused")
	}
}

// TestDockerignoreKeepsTheContextClean: the image's build context holds the
// sources only, never the history, a local database, a built binary or a
// key (Docker reads .dockerignore patterns from the context's root).
func TestDockerignoreKeepsTheContextClean(t *testing.T) {
	t.Parallel()
	var patterns []string
	for _, l := range strings.Split(readRepoFile(t, ".dockerignore"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, p := range []string{".git", "*.db", "*.db-wal", "kavach", "admin-key", "*.pem", ".env"} {
		if !slices.Contains(patterns, p) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
	for _, p := range patterns {
		if p == "cmd" || p == "*.go" || p == "go.mod" || p == "policies" {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
}
