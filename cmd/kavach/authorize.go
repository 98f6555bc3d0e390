package main

import (
	"encoding/json"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/api"
)

func authorizeCommand() *cli.Command {
	return &cli.Command{
		Name:  "authorize",
		Usage: "ask for a decision; exits 0 when allowed, 3 when denied",
		Flags: []cli.Flag{
			serverFlag, apiKeyFlag,
			&cli.StringFlag{Name: "agent", Usage: "agent ID (or use --token)"},
			&cli.StringFlag{Name: "token", Usage: "agent bearer token; prefer the env var, which stays out of shell history", EnvVars: []string{"KAVACH_AGENT_TOKEN"}},
			&cli.StringFlag{Name: "action", Required: true},
			&cli.StringFlag{Name: "resource", Required: true},
			&cli.StringFlag{Name: "arguments", Usage: "arguments as a JSON object"},
			&cli.StringFlag{Name: "ip", Usage: "client IP (checked by ipAllowlist, recorded in the audit row)"},
			&cli.StringFlag{Name: "approval", Usage: "ID of an approved request, for a permission that requires approval"},
		},
		Action: func(c *cli.Context) error {
			req := api.AuthorizeRequest{AgentID: c.String("agent"), Action: c.String("action"), Resource: c.String("resource"),
				ApprovalID: c.String("approval")}
			if s := c.String("arguments"); s != "" {
				if !json.Valid([]byte(s)) {
					return cli.Exit("--arguments must be a JSON object", 2)
				}
				req.Arguments = json.RawMessage(s)
			}
			if ip := c.String("ip"); ip != "" {
				req.Context = &api.RequestContext{IP: ip, UserAgent: "kavach-cli/" + version}
			}
			token := c.String("token")
			if req.AgentID == "" && token == "" {
				return cli.Exit("give --agent or --token (or KAVACH_AGENT_TOKEN)", 2)
			}
			res, err := apiClient(c).Authorize(c.Context, req, token)
			if err != nil {
				return err
			}
			if err := printJSON(res); err != nil {
				return err
			}
			if !res.Allowed {
				return cli.Exit("", 3)
			}
			return nil
		},
	}
}
