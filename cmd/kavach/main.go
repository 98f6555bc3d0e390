// Command kavach runs the Kavach authorization sidecar and administers a
// running one.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	_ "time/tzdata" // time zones for timeWindow constraints, also on distroless

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp()
	if err := app.RunContext(ctx, interspersed(app, os.Args)); err != nil {
		err = usageExit(err)
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "kavach:", msg)
		}
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "kavach",
		Usage:   "authorization sidecar for AI agents",
		Version: version,
		// "RESOURCE=read,write" must reach us whole.
		DisableSliceFlagSeparator: true,
		// Errors are printed once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			serveCommand(), keysCommand(), agentCommand(), authorizeCommand(), delegateCommand(), delegationCommand(),
			approvalCommand(), anomaliesCommand(), eventsCommand(), webhooksCommand(), auditCommand(), bundleCommand(), policiesCommand(), oauthCommand(), statusCommand(), benchCommand(), migrateCommand(), importCommand(), versionCommand(),
		},
		OnUsageError: usageError,
	}
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = usageError
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
	return app
}

// usageError makes a bad flag or flag value exit 2, as a usage error.
func usageError(_ *cli.Context, err error, _ bool) error {
	return cli.Exit(err.Error(), 2)
}

// serverFlag is shared by the admin commands, which talk to a running sidecar.
var serverFlag = &cli.StringFlag{
	Name:    "server",
	Usage:   "address of the running sidecar",
	Value:   "http://" + config.DefaultAddress,
	EnvVars: []string{"KAVACH_SERVER"},
}

// apiKeyFlag is the credential of the admin commands. Without it the CLI
// tries KAVACH_ADMIN_KEY, then the key file the first start of the sidecar
// wrote (KAVACH_ADMIN_KEY_FILE, default ~/.config/kavach/admin-key).
var apiKeyFlag = &cli.StringFlag{
	Name:    "api-key",
	Usage:   "API key (kvk_…); prefer the env var, which stays out of shell history and ps",
	EnvVars: []string{"KAVACH_API_KEY"},
}

func apiClient(c *cli.Context) *client.Client { return apiClientFor(c, c.String("server")) }

func apiClientFor(c *cli.Context, server string) *client.Client {
	return client.New(server).WithAPIKey(apiKey(c))
}

// apiKey finds the CLI's credential: --api-key (or KAVACH_API_KEY),
// KAVACH_ADMIN_KEY, then the bootstrap key file; "" if none.
func apiKey(c *cli.Context) string {
	if k := c.String("api-key"); k != "" {
		return k
	}
	return client.KeyFromEnv()
}

// listFlags are the list commands' paging flags. A list command reads every
// page for you; --limit caps what it prints, and then the output's
// nextCursor, passed to --cursor, continues where it stopped.
func listFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "limit", Usage: "print at most this many (default: all, fetched a page at a time)"},
		&cli.StringFlag{Name: "cursor", Usage: "start after a previous run's output: its nextCursor"},
	}
}

// listPage reads the paging flags: where to start, and the cap on the
// output (0: none).
func listPage(c *cli.Context) (client.Page, int, error) {
	n := c.Int("limit")
	if n < 0 {
		return client.Page{}, 0, cli.Exit(fmt.Sprintf("--limit %d: use a positive number, or leave it out for everything", n), 2)
	}
	return client.Page{Cursor: c.String("cursor")}, n, nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// usageExit turns urfave/cli's answers to an unknown subcommand (exit 3,
// "No help topic for 'lst'") and to a missing required flag (exit 1) into
// usage errors, exit 2: 3 means denied (kavach authorize), and a script
// that misspells a command must not read a denial.
func usageExit(err error) error {
	if m := err.Error(); strings.HasPrefix(m, "Required flag") || strings.HasPrefix(m, "Required flags") {
		return cli.Exit(m, 2) // urfave/cli's missing required flags: a usage error too
	}
	var ec cli.ExitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != 3 {
		return err
	}
	name, ok := strings.CutPrefix(err.Error(), "No help topic for ")
	if !ok {
		return err
	}
	return cli.Exit(fmt.Sprintf("unknown command %s: see kavach --help", name), 2)
}
