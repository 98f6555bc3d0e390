// Command kavach runs the Kavach authorization sidecar and administers a
// running one.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
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
	if err := newApp().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "kavach:", err)
		if ec, ok := err.(cli.ExitCoder); ok {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "kavach",
		Usage:   "authorization sidecar for AI agents",
		Version: version,
		// "RESOURCE=read,write" must reach us whole.
		DisableSliceFlagSeparator: true,
		// Errors are printed once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			serveCommand(), agentCommand(), authorizeCommand(), delegateCommand(), delegationCommand(),
			approvalCommand(), auditCommand(), bundleCommand(), policiesCommand(), oauthCommand(), statusCommand(), benchCommand(), migrateCommand(), versionCommand(),
		},
	}
}

// serverFlag is shared by the admin commands, which talk to a running sidecar.
var serverFlag = &cli.StringFlag{
	Name:    "server",
	Usage:   "address of the running sidecar",
	Value:   "http://" + config.DefaultAddress,
	EnvVars: []string{"KAVACH_SERVER"},
}

func apiClient(c *cli.Context) *client.Client { return client.New(c.String("server")) }

func apiClientFor(server string) *client.Client { return client.New(server) }

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
