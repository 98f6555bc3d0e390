package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/loadgen"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "drive a running sidecar (and, side by side, stock OPA with the same bundle and a floor server) with a decision mix; the agents and key it creates are revoked afterwards",
		Flags: []cli.Flag{
			serverFlag, apiKeyFlag,
			&cli.IntFlag{Name: "agents", Value: 50, Usage: "agents to create for the mix"},
			&cli.IntFlag{Name: "concurrency", Value: 32},
			&cli.StringFlag{Name: "duration", Value: "10s", Usage: "how long each target is measured (100ms to 24h)"},
			&cli.StringFlag{Name: "warmup", Value: "2s", Usage: "how long each target is driven first, unmeasured (0: none)"},
			&cli.IntFlag{Name: "rounds", Value: 1, Usage: "measure every target this many times (1 to 100), in rotating order; the table holds the medians, and each target's ratios to the first round by round"},
			&cli.BoolFlag{Name: "together", Usage: "drive every target at the same time in each round, each with --concurrency callers, so that the machine's other work weighs on all alike (ratios within a round then compare targets under the same load; on a busy machine the steadiest measure of what a feature costs)"},
			&cli.StringFlag{Name: "opa-binary", Usage: "stock opa to run with the sidecar's bundle, measured with the same mix"},
			&cli.StringFlag{Name: "opa-decision-logs", Value: "both", Usage: "off, on (console) or both"},
			&cli.BoolFlag{Name: "floor", Usage: "also measure a floor server (its own process, fixed answer)"},
			&cli.BoolFlag{Name: "durable-floor", Usage: "also measure a durable floor: a server of its own process that answers each request after appending its row to a file and fsyncing (group commit), the least a sidecar answering after its audit row is on disk can cost"},
			&cli.StringSliceFlag{Name: "compare", Usage: "NAME=URL: another sidecar (on a database of its own), measured with the same mix (e.g. a build with -tags kavach_noauth)"},
		},
		Subcommands: []*cli.Command{{
			Name:  "floor",
			Usage: "run the floor server: every request gets a fixed decision body (with --durable, after its row is appended to the file and fsynced)",
			Flags: []cli.Flag{&cli.StringFlag{Name: "addr", Value: "127.0.0.1:0"},
				&cli.StringFlag{Name: "durable", Usage: "append each request's row to this file, fsynced in group commits, before answering"}},
			Action: serveFloor,
		}, {
			Name: "sink",
			Usage: "run a sink: every POST gets 200 with an empty body, so it can receive OTLP/HTTP exports " +
				"(telemetry.otlpEndpoint) or webhooks in a benchmark",
			Flags:  []cli.Flag{&cli.StringFlag{Name: "addr", Value: "127.0.0.1:0"}},
			Action: func(c *cli.Context) error { return serveFixed(c, loadgen.SinkHandler()) },
		}},
		Action: runBench,
	}
}

// serveFixed serves h on --addr until interrupted, announcing the address
// it listens on.
func serveFixed(c *cli.Context, h http.Handler) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(c.Context, "tcp", c.String("addr"))
	if err != nil {
		return err
	}
	fmt.Println("listening", ln.Addr().String())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-c.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

func runBench(c *cli.Context) error {
	ctx := c.Context
	duration, err := benchDuration(c, "duration")
	if err != nil {
		return err
	}
	warmup, err := benchDuration(c, "warmup")
	if err != nil {
		return err
	}
	cl := apiClient(c)
	server := strings.TrimRight(c.String("server"), "/")
	main, mix, cleanup, err := sidecarTarget(ctx, cl, "kavach sidecar", server, c.Int("agents"))
	if err != nil {
		return err
	}
	defer cleanup()
	targets := []loadgen.Target{main}
	mixes := [][]loadgen.Request{mix}
	// Other sidecars (a build with -tags kavach_noauth, say), each on a
	// database of its own, with the same mix over agents of their own.
	for _, cmp := range c.StringSlice("compare") {
		name, url, ok := strings.Cut(cmp, "=")
		if !ok || name == "" || url == "" {
			return cli.Exit("--compare takes NAME=URL", 2)
		}
		url = strings.TrimRight(url, "/")
		t, m, cleanup, err := sidecarTarget(ctx, apiClientFor(c, url), name, url, c.Int("agents"))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer cleanup()
		targets, mixes = append(targets, t), append(mixes, m)
	}
	if bin := c.String("opa-binary"); bin != "" {
		dir, err := os.MkdirTemp("", "kavach-bench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bundlePath := filepath.Join(dir, "kavach.tar.gz")
		f, err := os.Create(bundlePath) //nolint:gosec // G304: a fixed name in the bench's own temporary directory
		if err != nil {
			return err
		}
		err = cl.Bundle(ctx, f)
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("fetch bundle: %w", err)
		}
		modes := map[string][]bool{"off": {false}, "on": {true}, "both": {false, true}}[c.String("opa-decision-logs")]
		if modes == nil {
			return cli.Exit("--opa-decision-logs must be off, on or both", 2)
		}
		for _, logs := range modes {
			url, stop, err := startOPA(ctx, bin, bundlePath, logs)
			if err != nil {
				return err
			}
			defer stop()
			name := "stock OPA, logs off"
			if logs {
				name = "stock OPA, logs console"
			}
			targets, mixes = append(targets, loadgen.Target{Name: name, Kind: loadgen.OPA, URL: url}), append(mixes, mix)
		}
	}
	if c.Bool("floor") {
		url, stop, err := startFloor(ctx)
		if err != nil {
			return err
		}
		defer stop()
		targets, mixes = append(targets, loadgen.Target{Name: "floor server", Kind: loadgen.Floor, URL: url, Sample: loadgen.FloorSample(url)}), append(mixes, mix)
	}
	durable := -1 // the durable floor's target, if any
	if c.Bool("durable-floor") {
		dir, err := os.MkdirTemp("", "kavach-bench-floor")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		url, stop, err := startFloor(ctx, "--durable", filepath.Join(dir, "rows.log"))
		if err != nil {
			return err
		}
		defer stop()
		durable = len(targets)
		targets, mixes = append(targets, loadgen.Target{Name: "durable floor", Kind: loadgen.Floor, URL: url,
			Sample: loadgen.FloorSample(url)}), append(mixes, mix)
	}
	opts := loadgen.Options{Concurrency: c.Int("concurrency"), Duration: duration, Warmup: warmup}
	rounds := c.Int("rounds")
	if rounds < 1 || rounds > 100 {
		return cli.Exit("--rounds must be from 1 to 100", 2)
	}
	fmt.Printf("mix: %d requests over %d agents (allowed, denied, wildcard, by token); concurrency %d; %s per target after %s warm-up",
		len(mix), c.Int("agents"), opts.Concurrency, opts.Duration, opts.Warmup)
	if rounds > 1 {
		fmt.Printf("; %d rounds, medians", rounds)
	}
	together := c.Bool("together")
	if together {
		fmt.Print("; targets driven together")
	}
	fmt.Println()
	all := make([][]loadgen.Result, rounds)
	for r := range all {
		all[r] = make([]loadgen.Result, len(targets))
		if together {
			var g errgroup.Group
			for i := range targets {
				g.Go(func() (err error) {
					if all[r][i], err = loadgen.Run(ctx, targets[i], mixes[i], opts); err != nil {
						return fmt.Errorf("%s: %w", targets[i].Name, err)
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				return err
			}
			continue
		}
		for _, i := range loadgen.Order(len(targets), r) {
			res, err := loadgen.Run(ctx, targets[i], mixes[i], opts)
			if err != nil {
				return fmt.Errorf("%s: %w", targets[i].Name, err)
			}
			all[r][i] = res
		}
	}
	fmt.Print(loadgen.Format(loadgen.Combine(all)))
	fmt.Print(loadgen.FormatRounds(all, together))
	if durable >= 0 {
		fmt.Print(loadgen.FormatAgainst(all, 0, durable))
	}
	return nil
}

// sidecarTarget prepares a sidecar for the bench: n agents and the mix
// over them, and a decider key for the decisions asked by agent ID, as an
// app asks them. cleanup revokes every agent created and the key, even once
// ctx has ended; on an error, what was created is revoked already.
func sidecarTarget(ctx context.Context, cl *client.Client, name, url string, n int) (_ loadgen.Target, _ []loadgen.Request, _ func(), err error) {
	var agents []string
	var keyID string
	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		revokeAgents(ctx, os.Stderr, cl, name, agents)
		if keyID != "" {
			if _, err := cl.RevokeKey(ctx, keyID); err != nil {
				fmt.Fprintf(os.Stderr, "%s: revoke the bench's key %s: %v\n", name, keyID, err)
			}
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	owner := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	mix, err := benchMix(ctx, n, func(i int) (api.AgentWithToken, error) {
		a, err := cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: fmt.Sprintf("%s-%d", owner, i), Name: "bench",
			Permissions: []api.Permission{
				{Resource: "mcp:github:issues", Actions: []string{"read", "comment"}},
				{Resource: "mcp:github:*", Actions: []string{"read"}},
				{Resource: "admin:*:delete", Actions: []string{"*"}},
				{Resource: "docs:public", Actions: []string{"read"}},
			}})
		if err == nil {
			agents = append(agents, a.ID)
		}
		return a, err
	})
	if err != nil {
		return loadgen.Target{}, nil, nil, err
	}
	key, err := cl.CreateKey(ctx, api.CreateKeyRequest{Name: "kavach-bench", Roles: []string{"decider"}})
	if err != nil {
		return loadgen.Target{}, nil, nil, fmt.Errorf("create the bench's decider key: %w", err)
	}
	keyID = key.ID
	return loadgen.Target{Name: name, Kind: loadgen.Sidecar, URL: url, Key: key.Key, Sample: metricsSample(cl)}, mix, cleanup, nil
}

// metricsSample reads a sidecar's CPU time and decisions from its /metrics
// (process_cpu_seconds_total, kavach_decisions_total), for the bench's CPU
// per decision; an error (a key without role metrics or admin, a build
// without the counter) leaves the column empty.
func metricsSample(cl *client.Client) func(context.Context) (loadgen.Sample, error) {
	return func(ctx context.Context) (loadgen.Sample, error) {
		var b bytes.Buffer
		if err := cl.Metrics(ctx, &b); err != nil {
			return loadgen.Sample{}, err
		}
		var s loadgen.Sample
		cpu := false
		for line := range strings.Lines(b.String()) {
			name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
			if !ok || strings.HasPrefix(name, "#") {
				continue
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				continue
			}
			switch {
			case name == "process_cpu_seconds_total":
				s.CPUSeconds, cpu = v, true
			case strings.HasPrefix(name, "kavach_decisions_total{"):
				s.Decisions += v
			}
		}
		if !cpu {
			return loadgen.Sample{}, errors.New("no process_cpu_seconds_total in /metrics")
		}
		return s, nil
	}
}

// cleanupTimeout bounds the revocations after a run, so a sidecar gone
// away does not hold the bench.
const cleanupTimeout = time.Minute

// revokeParallel bounds the revocations in flight.
const revokeParallel = 8

// revokeAgents revokes the bench's agents, revokeParallel at a time, so no
// agent it made keeps a live token after the run. Failures are reported to
// w (the first few in full) and counted.
func revokeAgents(ctx context.Context, w io.Writer, cl *client.Client, name string, ids []string) int {
	var mu sync.Mutex
	var failed []string
	var g errgroup.Group
	g.SetLimit(revokeParallel)
	for _, id := range ids {
		g.Go(func() error {
			if _, err := cl.RevokeAgent(ctx, id); err != nil {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("%s: %v", id, err))
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(failed) == 0 {
		return 0
	}
	sort.Strings(failed)
	fmt.Fprintf(w, "%s: %d of the bench's %d agents were not revoked; revoke them with kavach agent revoke:\n", name, len(failed), len(ids))
	const shown = 5
	for _, f := range failed[:min(shown, len(failed))] {
		fmt.Fprintf(w, "  %s\n", f)
	}
	if len(failed) > shown {
		fmt.Fprintf(w, "  … and %d more\n", len(failed)-shown)
	}
	return len(failed)
}

// benchMix creates agents and builds the request mix over them.
func benchMix(_ context.Context, n int, create func(int) (api.AgentWithToken, error)) ([]loadgen.Request, error) {
	var mix []loadgen.Request
	for i := range n {
		a, err := create(i)
		if err != nil {
			return nil, fmt.Errorf("create bench agent: %w", err)
		}
		mix = append(mix,
			loadgen.Request{AgentID: a.ID, Action: "comment", Resource: "mcp:github:issues", Allowed: true},
			loadgen.Request{AgentID: a.ID, Action: "read", Resource: "mcp:github:repos", Allowed: true},
			loadgen.Request{AgentID: a.ID, Action: "read", Resource: "mcp:github:repos:pulls", Allowed: true},
			loadgen.Request{AgentID: a.ID, Action: "write", Resource: "mcp:github:repos", Allowed: false},
			loadgen.Request{Token: a.Token, Action: "purge", Resource: "admin:projects:delete", Allowed: true},
		)
	}
	return mix, nil
}

func freeAddr(ctx context.Context) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startOPA(ctx context.Context, bin, bundlePath string, logs bool) (string, func(), error) {
	addr, err := freeAddr(ctx)
	if err != nil {
		return "", nil, err
	}
	args := []string{"run", "--server", "--addr", addr, "--disable-telemetry", "--log-level", "error", "--bundle", bundlePath}
	if logs {
		args = append(args, "--set", "decision_logs.console=true")
	}
	//nolint:gosec // G204: bin is the opa binary the operator named (--opa-binary)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = nil, nil // console decision logs are written (and discarded), as OPA would
	if logs {
		devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		cmd.Stdout, cmd.Stderr = devnull, devnull
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start opa: %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	url := "http://" + addr
	if err := waitHealthy(ctx, url+"/health?bundles=true"); err != nil {
		stop()
		return "", nil, fmt.Errorf("opa: %w", err)
	}
	return url, stop, nil
}

// serveFloor runs kavach bench floor: the fixed answer, after a durable
// write with --durable.
func serveFloor(c *cli.Context) error {
	path := c.String("durable")
	if path == "" {
		return serveFixed(c, loadgen.Sampled(loadgen.FloorHandler()))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600) //nolint:gosec // G304: the operator's own path
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	return serveFixed(c, loadgen.Sampled(loadgen.DurableFloorHandler(c.Context, f)))
}

// startFloor starts kavach bench floor, with args, as a process of its own.
func startFloor(ctx context.Context, args ...string) (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, self, append([]string{"bench", "floor", "--addr", "127.0.0.1:0"}, args...)...) //nolint:gosec // G204: this very executable (os.Executable), its own arguments
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("floor server did not start: %q %w", line, err)
	}
	if !ok {
		stop()
		return "", nil, fmt.Errorf("floor server did not start: %q <nil>", line)
	}
	return "http://" + addr, stop, nil
}

func waitHealthy(ctx context.Context, url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				// The last answer was not 200: no error to wrap.
				return errors.New("not healthy after 60s: <nil>")
			}
			return fmt.Errorf("not healthy after 60s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
