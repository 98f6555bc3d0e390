// Command quickstart is the seeds' "Full working example", line for line,
// against a running sidecar: agent creation, authorization by ID and by
// token, rotation, delegation and audit export. It prints what the seed
// prints. Usage: KAVACH_API_KEY=kvk_… go run ./tests/quickstart -server http://127.0.0.1:7400
// (the key needs the admin role: the example creates agents and delegations).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

func main() {
	server := flag.String("server", "http://127.0.0.1:7400", "sidecar address")
	csvOut := flag.String("csv", "", "file to write the audit export to (default: discard)")
	flag.Parse()
	// The app's API key, found as the CLI finds it (KAVACH_API_KEY, …): it
	// stays out of ps.
	kavach := client.New(*server).WithAPIKey(client.KeyFromEnv())
	if err := run(context.Background(), kavach, *csvOut); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kavach *client.Client, csvOut string) error {
	// Create an agent with wildcard read on github resources
	agent, err := kavach.CreateAgent(ctx, api.CreateAgentRequest{
		OwnerID: "user-123",
		Name:    "github-reader",
		Type:    "autonomous",
		Permissions: []api.Permission{
			{Resource: "mcp:github:*", Actions: []string{"read"}},
			{Resource: "mcp:github:issues", Actions: []string{"read", "comment"}},
		},
	})
	if err != nil {
		return err
	}

	// Allowed: mcp:github:repos matches mcp:github:*
	r1, err := kavach.Authorize(ctx, api.AuthorizeRequest{AgentID: agent.ID, Action: "read", Resource: "mcp:github:repos"}, "")
	if err != nil {
		return err
	}
	fmt.Println(r1.Allowed) // true

	// Denied: no write permission
	r2, err := kavach.Authorize(ctx, api.AuthorizeRequest{AgentID: agent.ID, Action: "write", Resource: "mcp:github:repos"}, "")
	if err != nil {
		return err
	}
	fmt.Println(r2.Allowed) // false

	// Authorize using the raw bearer token
	r3, err := kavach.Authorize(ctx, api.AuthorizeRequest{Action: "read", Resource: "mcp:github:issues"}, agent.Token)
	if err != nil {
		return err
	}
	fmt.Println(r3.Allowed) // true

	// Rotate: old token is immediately invalid
	rotated, err := kavach.RotateAgent(ctx, agent.ID)
	if err != nil {
		return err
	}
	fmt.Println(rotated.Token) // new kv_... token

	// Delegate a subset to a sub-agent
	sub, err := kavach.CreateAgent(ctx, api.CreateAgentRequest{
		OwnerID: "user-123", Name: "sub-reader", Type: "delegated", Permissions: []api.Permission{},
	})
	if err != nil {
		return err
	}
	expires := api.NewTime(time.Now().Add(time.Hour))
	maxDepth := 2
	if _, err := kavach.Delegate(ctx, api.DelegateRequest{
		FromAgent:   agent.ID,
		ToAgent:     sub.ID,
		Permissions: []api.Permission{{Resource: "mcp:github:issues", Actions: []string{"read"}}},
		ExpiresAt:   &expires,
		MaxDepth:    &maxDepth,
	}); err != nil {
		return err
	}

	perms, err := kavach.EffectivePermissions(ctx, sub.ID)
	if err != nil {
		return err
	}
	fmt.Println(jsLiteral(perms.Permissions))
	// [{ resource: 'mcp:github:issues', actions: ['read'] }]

	// Export the full audit trail
	var csv bytes.Buffer
	if err := kavach.ExportAudit(ctx, client.AuditFilter{}, "csv", &csv); err != nil {
		return err
	}
	if csvOut != "" {
		return os.WriteFile(csvOut, csv.Bytes(), 0o600)
	}
	return nil
}

// jsLiteral prints permissions the way Node's console.log shows the seed's
// objects, so the output can be compared with the seed's line for line.
func jsLiteral(perms []api.EffectivePermission) string {
	items := make([]string, len(perms))
	for i, p := range perms {
		actions := make([]string, len(p.Actions))
		for j, a := range p.Actions {
			actions[j] = "'" + a + "'"
		}
		items[i] = fmt.Sprintf("{ resource: '%s', actions: [%s] }", p.Resource, strings.Join(actions, ", "))
	}
	return "[" + strings.Join(items, ", ") + "]"
}
