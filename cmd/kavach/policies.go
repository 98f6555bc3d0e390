package main

import (
	"github.com/urfave/cli/v2"
)

func policiesCommand() *cli.Command {
	return &cli.Command{
		Name:  "policies",
		Usage: "list the policies a running sidecar has loaded, with their revision",
		Flags: []cli.Flag{serverFlag, apiKeyFlag},
		Action: func(c *cli.Context) error {
			raw, err := apiClient(c).Policies(c.Context)
			if err != nil {
				return err
			}
			return printJSON(raw)
		},
	}
}
