package main

import (
	"github.com/urfave/cli/v2"
)

func oauthCommand() *cli.Command {
	return &cli.Command{
		Name:  "oauth",
		Usage: "manage the MCP authorization server of a running sidecar",
		Subcommands: []*cli.Command{{
			Name:  "rotate-key",
			Usage: "sign new access tokens with a fresh ES256 key; old keys stay published until their tokens expire",
			Flags: []cli.Flag{serverFlag, apiKeyFlag},
			Action: func(c *cli.Context) error {
				keys, err := apiClient(c).RotateOAuthKey(c.Context)
				if err != nil {
					return err
				}
				return printJSON(keys)
			},
		}},
	}
}
