package domain

// Kinds of audit row.
const (
	// KindDecision is a decision of POST /v1/authorize.
	KindDecision = "decision"
	// KindEvent is a change of state (agent.create, key.revoke, …) or a
	// refused API call (api.refused).
	KindEvent = "event"
)

// Actor types: who made a call.
const (
	ActorKey       = "key"       // an API key (key_…)
	ActorAdminEnv  = "admin_env" // KAVACH_ADMIN_KEY
	ActorAgent     = "agent"     // an agent's own token or an MCP access token
	ActorAnonymous = "anonymous" // no credential
	ActorSystem    = "system"    // the sidecar itself (start-up, file watchers)
	// ActorImport marks rows brought over from another system by kavach
	// import (ID: the system, "kavachos"): history recorded there, not
	// calls made here.
	ActorImport = "import"
	// ActorSignedLink is an approval's owner deciding through the signed
	// link the approval was sent with (ID: the owner; Name: "via signed
	// link").
	ActorSignedLink = "signed_link"
)

// Actor is the authenticated caller behind an audit row. OnBehalfOf is a
// user ID the caller vouched for (an approver acting for a human); it is
// recorded beside the credential, never instead of it.
type Actor struct {
	Type       string `json:"type"`
	ID         string `json:"id,omitempty"`
	Name       string `json:"name,omitempty"`
	OnBehalfOf string `json:"onBehalfOf,omitempty"`
}
