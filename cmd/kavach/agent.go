package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "manage agents on a running sidecar",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "create an agent and print it with its token (shown only this once)",
				Flags: []cli.Flag{
					serverFlag, apiKeyFlag,
					&cli.StringFlag{Name: "owner", Usage: "owner user ID (from your app's auth)", Required: true},
					&cli.StringFlag{Name: "name", Required: true},
					&cli.StringFlag{Name: "type", Usage: "autonomous, delegated or service", Value: "autonomous"},
					&cli.StringSliceFlag{Name: "permission", Aliases: []string{"p"},
						Usage: "RESOURCE=ACTION[,ACTION…], e.g. 'mcp:github:*=read'; repeatable"},
					&cli.StringFlag{Name: "permissions-json", Usage: `permissions as JSON, e.g. '[{"resource":"mcp:*","actions":["read"]}]'`},
					&cli.StringFlag{Name: "expires-in", Usage: "lifetime such as 90m, 24h or 7d (default agents.tokenExpiry)"},
					&cli.StringFlag{Name: "metadata", Usage: "metadata as a JSON object"},
				},
				Action: createAgent,
			},
			{
				Name:  "list",
				Usage: "list agents",
				Flags: append([]cli.Flag{serverFlag, apiKeyFlag, &cli.StringFlag{Name: "owner"},
					&cli.StringFlag{Name: "status", Usage: "active, suspended, revoked or expired"}}, listFlags()...),
				Action: func(c *cli.Context) error {
					p, upTo, err := listPage(c)
					if err != nil {
						return err
					}
					list, err := apiClient(c).ListAllAgents(c.Context,
						client.AgentFilter{OwnerID: c.String("owner"), Status: c.String("status"), Cursor: p.Cursor}, upTo)
					if err != nil {
						return err
					}
					return printJSON(list)
				},
			},
			{
				Name: "get", Usage: "show one agent", ArgsUsage: "AGENT_ID", Flags: []cli.Flag{serverFlag, apiKeyFlag},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "AGENT_ID")
					if err != nil {
						return err
					}
					a, err := apiClient(c).GetAgent(c.Context, id)
					if err != nil {
						return err
					}
					return printJSON(a)
				},
			},
			{
				Name: "permissions", Usage: "own and delegated permissions that count now, with their sources", ArgsUsage: "AGENT_ID", Flags: []cli.Flag{serverFlag, apiKeyFlag},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "AGENT_ID")
					if err != nil {
						return err
					}
					perms, err := apiClient(c).EffectivePermissions(c.Context, id)
					if err != nil {
						return err
					}
					return printJSON(perms)
				},
			},
			{
				Name: "rotate", Usage: "issue a new token; the old one stops working at once", ArgsUsage: "AGENT_ID", Flags: []cli.Flag{serverFlag, apiKeyFlag},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "AGENT_ID")
					if err != nil {
						return err
					}
					a, err := apiClient(c).RotateAgent(c.Context, id)
					if err != nil {
						return err
					}
					return printJSON(a)
				},
			},
			{
				Name: "trust", Usage: "an agent's trust score, level and the factors behind them", ArgsUsage: "AGENT_ID",
				Flags: []cli.Flag{serverFlag, apiKeyFlag},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "AGENT_ID")
					if err != nil {
						return err
					}
					t, err := apiClient(c).AgentTrust(c.Context, id)
					if err != nil {
						return err
					}
					return printJSON(t)
				},
			},
			{
				Name: "resume", Usage: "lift a suspension (anomaly.suspendOn): the agent is active again; needs an admin key",
				ArgsUsage: "AGENT_ID", Flags: []cli.Flag{serverFlag, apiKeyFlag},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "AGENT_ID")
					if err != nil {
						return err
					}
					a, err := apiClient(c).ResumeAgent(c.Context, id)
					if err != nil {
						return err
					}
					return printJSON(a)
				},
			},
			{
				Name: "revoke", Usage: "revoke an agent permanently", ArgsUsage: "AGENT_ID", Flags: []cli.Flag{serverFlag, apiKeyFlag},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "AGENT_ID")
					if err != nil {
						return err
					}
					a, err := apiClient(c).RevokeAgent(c.Context, id)
					if err != nil {
						return err
					}
					return printJSON(a)
				},
			},
		},
	}
}

func oneArg(c *cli.Context, name string) (string, error) {
	if c.NArg() != 1 {
		return "", cli.Exit(fmt.Sprintf("expected one argument, %s", name), 2)
	}
	return c.Args().First(), nil
}

func createAgent(c *cli.Context) error {
	req := api.CreateAgentRequest{OwnerID: c.String("owner"), Name: c.String("name"), Type: c.String("type")}
	perms, err := parsePermissions(c.StringSlice("permission"), c.String("permissions-json"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	req.Permissions = perms
	at, ok, err := expiresIn(c)
	if err != nil {
		return err
	}
	if ok {
		req.ExpiresAt = &at
	}
	if s := c.String("metadata"); s != "" {
		if err := json.Unmarshal([]byte(s), &req.Metadata); err != nil {
			return cli.Exit("--metadata must be a JSON object: "+err.Error(), 2)
		}
	}
	a, err := apiClient(c).CreateAgent(c.Context, req)
	if err != nil {
		return err
	}
	return printJSON(a)
}

// parsePermissions reads --permission flags and --permissions-json. With
// neither, it returns nil so the sidecar applies agents.defaultPermissions.
func parsePermissions(flags []string, raw string) ([]api.Permission, error) {
	var perms []api.Permission
	if raw != "" {
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&perms); err != nil {
			return nil, fmt.Errorf("--permissions-json: %w", err)
		}
	}
	for _, f := range flags {
		i := strings.LastIndex(f, "=")
		if i <= 0 || i == len(f)-1 {
			return nil, fmt.Errorf("--permission %q: use RESOURCE=ACTION[,ACTION…]", f)
		}
		perms = append(perms, api.Permission{Resource: f[:i], Actions: strings.Split(f[i+1:], ",")})
	}
	return perms, nil
}
