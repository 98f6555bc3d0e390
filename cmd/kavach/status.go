package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show a running sidecar's health and its position in the change feed",
		Flags: []cli.Flag{serverFlag, apiKeyFlag, &cli.BoolFlag{Name: "json", Usage: "print the raw /health document"},
			&cli.BoolFlag{Name: "ready", Usage: "exit 0 only if the sidecar is ready (a probe for images without curl)"}},
		Action: func(c *cli.Context) error {
			if c.Bool("ready") {
				if err := apiClient(c).Ready(c.Context); err != nil {
					return cli.Exit("not ready: "+err.Error(), 1)
				}
				fmt.Println("ready")
				return nil
			}
			h, err := apiClient(c).Health(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(h)
			}
			fmt.Printf("status:          %s\n", h.Status)
			fmt.Printf("database:        %s (schema version %d)\n", h.Database, h.SchemaVersion)
			fmt.Printf("version:         %s\n", h.Version)
			if s := h.Sync; s != nil {
				fmt.Printf("applied change:  %d\n", s.AppliedSeq)
				fmt.Printf("latest change:   %d\n", s.LatestSeq)
				fmt.Printf("lag:             %d changes, last sync %d ms ago\n", s.Lag, s.LastSyncAgeMs)
				fmt.Printf("listening:       %v\n", s.Listening)
			}
			return nil
		},
	}
}
