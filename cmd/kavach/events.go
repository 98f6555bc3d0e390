package main

import (
	"encoding/json"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "the live event feed (agent.created, authorize.denied, approval.requested, …)",
		Subcommands: []*cli.Command{{
			Name: "tail",
			Usage: "print events as they are committed, one JSON object per line, until interrupted; " +
				"reconnects with Last-Event-ID, so nothing is missed across a sidecar restart; needs an auditor or admin key",
			Flags: []cli.Flag{serverFlag, apiKeyFlag,
				&cli.StringSliceFlag{Name: "type", Usage: "event types to print (repeat, or comma-separated; default all)"},
				&cli.StringFlag{Name: "agent", Usage: "only this agent's events"},
				&cli.StringFlag{Name: "after", Usage: "start after this event seq (0: every event still kept; default: the next one committed)"},
			},
			Action: func(c *cli.Context) error {
				var types []string
				for _, t := range c.StringSlice("type") {
					types = append(types, strings.Split(t, ",")...)
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetEscapeHTML(false)
				return apiClient(c).StreamEvents(c.Context, client.EventStream{Types: types, AgentID: c.String("agent"),
					After: c.String("after"), Reconnect: 2 * time.Second}, func(ev api.Event) error { return enc.Encode(ev) })
			},
		}},
	}
}

func webhooksCommand() *cli.Command {
	return &cli.Command{
		Name:  "webhooks",
		Usage: "webhook deliveries (the endpoints are configured in webhooks: of the config file)",
		Subcommands: []*cli.Command{{
			Name:  "deliveries",
			Usage: "webhook deliveries, newest first, with their state and last attempt; needs an admin key",
			Flags: append([]cli.Flag{serverFlag, apiKeyFlag,
				&cli.StringFlag{Name: "state", Usage: "pending, delivered or failed"},
				&cli.StringFlag{Name: "type", Usage: "event type"},
				&cli.StringFlag{Name: "endpoint", Usage: "endpoint ID (wh_…)"},
			}, listFlags()...),
			Action: func(c *cli.Context) error {
				p, upTo, err := listPage(c)
				if err != nil {
					return err
				}
				list, err := apiClient(c).ListAllWebhookDeliveries(c.Context, client.DeliveryFilter{State: c.String("state"),
					Type: c.String("type"), Endpoint: c.String("endpoint"), Limit: p.Limit, Cursor: p.Cursor}, upTo)
				if err != nil {
					return err
				}
				return printJSON(list)
			},
		}},
	}
}
