package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/api"
)

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "create, list and revoke API keys (needs an admin key)",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "create an API key; it is printed once",
				Flags: []cli.Flag{serverFlag, apiKeyFlag,
					&cli.StringFlag{Name: "name", Required: true, Usage: "what the key is for (my-app, prometheus, alice)"},
					&cli.StringSliceFlag{Name: "role", Required: true, Usage: "admin, approver, auditor, decider or metrics (repeatable)"},
					&cli.StringFlag{Name: "expires-in", Usage: "lifetime such as 30d or 2160h; none by default"},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the key"},
				},
				Action: func(c *cli.Context) error {
					req := api.CreateKeyRequest{Name: c.String("name"), Roles: c.StringSlice("role")}
					at, ok, err := expiresIn(c)
					if err != nil {
						return err
					}
					if ok {
						req.ExpiresAt = &at
					}
					k, err := apiClient(c).CreateKey(c.Context, req)
					if err != nil {
						return err
					}
					if c.Bool("quiet") {
						fmt.Println(k.Key)
						return nil
					}
					fmt.Fprintln(os.Stderr, "The key is shown once; Kavach keeps only its hash.")
					return printJSON(k)
				},
			},
			{
				Name: "list", Usage: "every API key (never a secret)", Flags: append([]cli.Flag{serverFlag, apiKeyFlag}, listFlags()...),
				Action: func(c *cli.Context) error {
					p, upTo, err := listPage(c)
					if err != nil {
						return err
					}
					list, err := apiClient(c).ListAllKeys(c.Context, p, upTo)
					if err != nil {
						return err
					}
					return printJSON(list)
				},
			},
			{
				Name: "get", Usage: "one API key (never its secret)", ArgsUsage: "KEY_ID", Flags: []cli.Flag{serverFlag, apiKeyFlag},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "KEY_ID")
					if err != nil {
						return err
					}
					k, err := apiClient(c).GetKey(c.Context, id)
					if err != nil {
						return err
					}
					return printJSON(k)
				},
			},
			{
				Name: "revoke", Usage: "revoke an API key; it is refused from then on", ArgsUsage: "KEY_ID",
				Flags: []cli.Flag{serverFlag, apiKeyFlag},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "KEY_ID")
					if err != nil {
						return err
					}
					k, err := apiClient(c).RevokeKey(c.Context, id)
					if err != nil {
						return err
					}
					return printJSON(k)
				},
			},
		},
	}
}
