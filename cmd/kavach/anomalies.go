package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/config"
)

func anomaliesCommand() *cli.Command {
	return &cli.Command{
		Name:  "anomalies",
		Usage: "anomalies detected in agents' behaviour (high_frequency, high_denial_rate, off_hours, probing)",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "anomalies, newest first; needs an auditor or admin key",
				Flags: append([]cli.Flag{serverFlag, apiKeyFlag,
					&cli.StringFlag{Name: "agent", Usage: "agent ID"},
					&cli.StringFlag{Name: "type", Usage: "high_frequency, high_denial_rate, off_hours or probing"},
					&cli.StringFlag{Name: "since", Usage: "detected at or after: an RFC 3339 time, or a duration back from now (1h, 7d)"},
				}, listFlags()...),
				Action: func(c *cli.Context) error {
					p, upTo, err := listPage(c)
					if err != nil {
						return err
					}
					since, err := sinceFlag(c.String("since"))
					if err != nil {
						return err
					}
					list, err := apiClient(c).ListAllAnomalies(c.Context, client.AnomalyFilter{AgentID: c.String("agent"),
						Type: c.String("type"), Since: since, Cursor: p.Cursor}, upTo)
					if err != nil {
						return err
					}
					return printJSON(list)
				},
			},
		},
	}
}

// sinceRule is what --since takes besides a time: a duration back from now.
var sinceRule = config.Rule{Name: "--since", Min: time.Second, Max: config.MaxExpiry, Examples: "30m, 1h, 7d"}

// sinceFlag reads --since: an RFC 3339 time as it is, or a duration back
// from now as the time it names.
func sinceFlag(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if _, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return v, nil
	}
	d, err := sinceRule.Parse(v)
	if err != nil {
		return "", cli.Exit(err.Error()+", or an RFC 3339 time such as 2026-01-02T15:04:05Z", 2)
	}
	return api.FormatTime(time.Now().Add(-d)), nil
}
