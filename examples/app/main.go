// Command app is how an app guards its agents' tool calls with Kavach: it
// holds a decider key, each agent presents its own token, and a call runs
// only when the sidecar allows it. Anything else (a denial, a sidecar that
// cannot answer) stops the call: fail closed.
//
//	KAVACH_API_KEY=kvk_… KAVACH_AGENT_TOKEN=kv_… go run ./examples/app comment mcp:github:issues '{"issue":42}'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

// guard asks Kavach whether the agent holding token may do action on
// resource with args. It returns nil only for an allow.
func guard(ctx context.Context, kv *client.Client, token, action, resource string, args json.RawMessage) error {
	d, err := kv.Authorize(ctx, api.AuthorizeRequest{Action: action, Resource: resource, Arguments: args}, token)
	var kerr *client.Error
	switch {
	case errors.As(err, &kerr) && kerr.Status < 500: // a credential or request refused: retrying will not help
		return fmt.Errorf("kavach refused the request (%s): %s", kerr.Code, kerr.Message)
	case err != nil: // unreachable, 503 audit_unavailable, …: try again later
		return fmt.Errorf("no decision, so no call: %w", err)
	case d.Code == "approval_required":
		return fmt.Errorf("waiting for the owner's approval %s; call again with it as approvalId", d.ApprovalID)
	case !d.Allowed: // no_permission, a constraint, or a token that is no good (invalid_token, agent_revoked, …)
		return fmt.Errorf("denied (%s): %s", d.Code, d.Reason)
	}
	return nil
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: app ACTION RESOURCE ARGUMENTS-JSON")
		os.Exit(2)
	}
	server := os.Getenv("KAVACH_SERVER") // unix:///var/run/kavach/kavach.sock in a pod
	if server == "" {
		server = "http://127.0.0.1:7400"
	}
	if os.Getenv("KAVACH_API_KEY") == "" { // without it the agent's token would be the only credential
		fmt.Fprintln(os.Stderr, "KAVACH_API_KEY is not set: the app needs its own decider key")
		os.Exit(2)
	}
	kv := client.New(server).WithAPIKey(os.Getenv("KAVACH_API_KEY"))
	action, resource, args := os.Args[1], os.Args[2], json.RawMessage(os.Args[3])
	if err := guard(context.Background(), kv, os.Getenv("KAVACH_AGENT_TOKEN"), action, resource, args); err != nil {
		fmt.Println("refused:", err)
		os.Exit(1)
	}
	fmt.Printf("allowed: the app runs %s on %s\n", action, resource)
}
