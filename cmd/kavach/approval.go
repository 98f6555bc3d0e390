package main

import (
	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

func approvalCommand() *cli.Command {
	resolve := func(approve bool) cli.ActionFunc {
		return func(c *cli.Context) error {
			id, err := oneArg(c, "APPROVAL_ID")
			if err != nil {
				return err
			}
			a, err := apiClient(c).ResolveApproval(c.Context, id, approve,
				api.ResolveApprovalRequest{OnBehalfOf: c.String("by"), Note: c.String("note")})
			if err != nil {
				return err
			}
			return printJSON(a)
		}
	}
	resolveFlags := []cli.Flag{serverFlag, apiKeyFlag,
		&cli.StringFlag{Name: "by", Usage: "user ID of the human you respond for (recorded beside your key as onBehalfOf)"},
		&cli.StringFlag{Name: "note"}}
	return &cli.Command{
		Name:  "approval",
		Usage: "list and resolve human approval requests",
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "approval requests, newest first",
				Flags: append([]cli.Flag{serverFlag, apiKeyFlag, &cli.StringFlag{Name: "status", Usage: "pending, approved, denied, used or expired"},
					&cli.StringFlag{Name: "owner"}, &cli.StringFlag{Name: "agent"}}, listFlags()...),
				Action: func(c *cli.Context) error {
					p, upTo, err := listPage(c)
					if err != nil {
						return err
					}
					list, err := apiClient(c).ListAllApprovals(c.Context, client.ApprovalFilter{Status: c.String("status"),
						OwnerID: c.String("owner"), AgentID: c.String("agent"), Cursor: p.Cursor}, upTo)
					if err != nil {
						return err
					}
					return printJSON(list)
				},
			},
			{
				Name: "get", Usage: "show one approval request: who asks for what, its status and expiry", ArgsUsage: "APPROVAL_ID",
				Flags: []cli.Flag{serverFlag, apiKeyFlag},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "APPROVAL_ID")
					if err != nil {
						return err
					}
					a, err := apiClient(c).GetApproval(c.Context, id)
					if err != nil {
						return err
					}
					return printJSON(a)
				},
			},
			{Name: "approve", Usage: "approve a pending request (its agent may then make the call once); needs an approver or admin key",
				ArgsUsage: "APPROVAL_ID", Flags: resolveFlags, Action: resolve(true)},
			{Name: "deny", Usage: "deny a pending request; needs an approver or admin key",
				ArgsUsage: "APPROVAL_ID", Flags: resolveFlags, Action: resolve(false)},
		},
	}
}
