package main

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/client"
)

func auditFilterFlags() []cli.Flag {
	return []cli.Flag{
		serverFlag, apiKeyFlag,
		&cli.StringFlag{Name: "agent", Usage: "agent ID"},
		&cli.StringFlag{Name: "user", Usage: "owner user ID"},
		&cli.StringFlag{Name: "result", Usage: "allowed or denied"},
		&cli.StringFlag{Name: "since", Usage: "RFC 3339 time, inclusive"},
		&cli.StringFlag{Name: "until", Usage: "RFC 3339 time, exclusive"},
		&cli.StringFlag{Name: "kind", Usage: "decision or event (a change of state, or a refused call)"},
		&cli.StringFlag{Name: "action", Usage: "one action: agent.update, api.refused, or an agent's action"},
	}
}

func auditFilter(c *cli.Context) client.AuditFilter {
	return client.AuditFilter{AgentID: c.String("agent"), UserID: c.String("user"), Result: c.String("result"),
		Since: c.String("since"), Until: c.String("until"), Limit: c.Int("limit"), Cursor: c.String("cursor"),
		Kind: c.String("kind"), Action: c.String("action")}
}

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "read the audit trail of a running sidecar, or verify it",
		Subcommands: []*cli.Command{
			{
				Name:  "query",
				Usage: "one page of entries, newest first",
				Flags: append(auditFilterFlags(),
					&cli.IntFlag{Name: "limit", Value: 100}, &cli.StringFlag{Name: "cursor", Usage: "nextCursor of the previous page"}),
				Action: func(c *cli.Context) error {
					page, err := apiClient(c).QueryAudit(c.Context, auditFilter(c))
					if err != nil {
						return err
					}
					return printJSON(page)
				},
			},
			{
				Name:  "export",
				Usage: "every matching entry, oldest first, as CSV or JSON",
				Flags: append(auditFilterFlags(),
					&cli.StringFlag{Name: "format", Value: "csv", Usage: "csv or json"},
					&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "file to write (default stdout)"}),
				Action: func(c *cli.Context) error {
					var w io.Writer = os.Stdout
					if path := c.String("out"); path != "" {
						f, err := os.Create(path) //nolint:gosec // G304: the output file the user named (--out)
						if err != nil {
							return err
						}
						defer f.Close()
						w = f
					}
					f := auditFilter(c)
					if err := apiClient(c).ExportAudit(c.Context, f, c.String("format"), w); err != nil {
						return fmt.Errorf("export: %w", err)
					}
					return nil
				},
			},
			auditVerifyCommand(),
		},
	}
}
