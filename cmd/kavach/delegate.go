package main

import (
	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/api"
)

func delegateCommand() *cli.Command {
	return &cli.Command{
		Name:  "delegate",
		Usage: "delegate some of an agent's permissions to another agent",
		Flags: []cli.Flag{
			serverFlag, apiKeyFlag,
			&cli.StringFlag{Name: "from", Usage: "delegating agent ID", Required: true},
			&cli.StringFlag{Name: "to", Usage: "receiving agent ID", Required: true},
			&cli.StringSliceFlag{Name: "permission", Aliases: []string{"p"}, Usage: "RESOURCE=ACTION[,ACTION…]; repeatable"},
			&cli.StringFlag{Name: "permissions-json", Usage: "permissions as JSON, with constraints"},
			&cli.StringFlag{Name: "expires-in", Usage: "lifetime such as 30m, 1h or 7d", Required: true},
			&cli.IntFlag{Name: "max-depth", Usage: "how deep the chain below may grow (1: no re-delegation)", Value: 1},
		},
		Action: func(c *cli.Context) error {
			perms, err := parsePermissions(c.StringSlice("permission"), c.String("permissions-json"))
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			expires, ok, err := expiresIn(c)
			if err != nil {
				return err
			}
			if !ok {
				return cli.Exit("--expires-in is required: a delegation always ends (30m, 1h, 7d)", 2)
			}
			depth := c.Int("max-depth")
			out, err := apiClient(c).Delegate(c.Context, api.DelegateRequest{FromAgent: c.String("from"), ToAgent: c.String("to"),
				Permissions: perms, ExpiresAt: &expires, MaxDepth: &depth})
			if err != nil {
				return err
			}
			return printJSON(out)
		},
	}
}

func delegationCommand() *cli.Command {
	return &cli.Command{
		Name:  "delegation",
		Usage: "list and revoke delegations",
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "delegations from and to an agent", ArgsUsage: "AGENT_ID",
				Flags: append([]cli.Flag{serverFlag, apiKeyFlag}, listFlags()...),
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "AGENT_ID")
					if err != nil {
						return err
					}
					p, upTo, err := listPage(c)
					if err != nil {
						return err
					}
					list, err := apiClient(c).ListAllDelegations(c.Context, id, p, upTo)
					if err != nil {
						return err
					}
					return printJSON(list)
				},
			},
			{
				Name: "revoke", Usage: "revoke a delegation and everything downstream of it", ArgsUsage: "DELEGATION_ID", Flags: []cli.Flag{serverFlag, apiKeyFlag},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "DELEGATION_ID")
					if err != nil {
						return err
					}
					d, err := apiClient(c).RevokeDelegation(c.Context, id)
					if err != nil {
						return err
					}
					return printJSON(d)
				},
			},
		},
	}
}
