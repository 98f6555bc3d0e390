package engine

import (
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// The policy data the rules read (data.kavach: agents, tokens,
// delegations, approvals) lives behind OPA's own storage interface,
// storage.Store: the seam between the engine and where the data is kept.
// The rules only look documents up by key (data.kavach.agents[id],
// data.kavach.tokens[hash], data.kavach.delegations[id], …), the prepared
// queries read the store through the interface, and the engine writes it
// only in Load (one document per collection, storage.ReplaceOp) and Apply
// (documents added, replaced or removed by key), in storage transactions.
// So a store that keeps only the hot agents in memory and reads the rest
// through from the database can replace MemoryData without touching a rule
// (NewWithData); the bundle for stock OPA (Documents) still carries all the
// data.

// MemoryData is OPA's in-memory store, holding every document, shaped as
// the rules expect. Values written are built by the engine from plain Go
// types and never mutated afterwards, so the JSON round trip on write is
// waste; AST values on read save a conversion on every decision.
func MemoryData() storage.Store {
	return inmem.NewFromObjectWithOpts(map[string]any{
		"kavach": map[string]any{"agents": map[string]any{}, "tokens": map[string]any{},
			"delegations": map[string]any{}, "approvals": map[string]any{}},
	}, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
}
