package kavachos

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Effects of a finding on decisions.
const (
	// Exact: the same calls are allowed; only the form changed.
	Exact = "exact"
	// Stricter: Kavach denies some calls KavachOS allowed.
	Stricter = "stricter"
	// Looser: Kavach may allow some calls KavachOS denied.
	Looser = "looser"
)

// kinds are the findings an import reports, with their effect.
var kinds = map[string]string{
	"agent_not_imported":        Stricter,
	"token_conflict":            Stricter,
	"expired_status":            Exact,
	"tenant_in_metadata":        Exact,
	"invalid_permission":        Exact,
	"invalid_action":            Exact,
	"pattern_unmatchable":       Exact,
	"duplicate_permission":      Exact,
	"shadowed_actions":          Exact,
	"shadowed_permission":       Exact,
	"never_allowed":             Exact,
	"unknown_constraint":        Exact,
	"ip_entries_dropped":        Stricter,
	"wildcard_bare_prefix":      Stricter,
	"wildcard_mid_pattern":      Stricter,
	"arg_patterns_nested":       Stricter,
	"arg_patterns_all":          Stricter,
	"arg_pattern_not_re2":       Stricter,
	"rate_limit_clamped":        Stricter,
	"constraint_untranslatable": Stricter,
	"too_many_permissions":      Stricter,
	"too_many_actions":          Stricter,
	"first_match_overlap":       Stricter,
	"approval_flow":             Looser,
	"delegation_constraints":    Stricter,
	"delegation_grant_dropped":  Stricter,
	"delegation_chain_ended":    Stricter,
	"delegation_depth_raised":   Exact,
	"delegation_not_imported":   Stricter,
	"approval_not_imported":     Exact,
	"agent_id_taken":            Stricter,
	"foreign_agent":             Stricter,
}

// Finding is one place where the import changed the form or the meaning
// of what KavachOS held.
type Finding struct {
	Kind   string `json:"kind"`
	Effect string `json:"effect"`
	// AgentID is the agent concerned; Position the permission's, 1-based,
	// in KavachOS's order.
	AgentID  string `json:"agentId,omitempty"`
	Position int    `json:"position,omitempty"`
	Resource string `json:"resource,omitempty"`
	// SourceID is the KavachOS ID of a delegation or approval.
	SourceID string `json:"sourceId,omitempty"`
	Detail   string `json:"detail"`
}

// Count is what happened to the rows of one kind.
type Count struct {
	// Read from KavachOS; Added to Kavach; Skipped, already present;
	// NotImported, for a reason a finding gives.
	Read        int64 `json:"read"`
	Added       int64 `json:"added"`
	Skipped     int64 `json:"skipped"`
	NotImported int64 `json:"notImported"`
}

// Report is what an import did: the counts per kind of row, the findings
// per kind (all of them go to the findings writer; a few examples of each
// are kept), and the differences of meaning that hold for every row.
type Report struct {
	Source    string               `json:"source"`
	DryRun    bool                 `json:"dryRun"`
	Agents    Count                `json:"agents"`
	Perms     Count                `json:"permissions"`
	Delegs    Count                `json:"delegations"`
	Approvals Count                `json:"approvals"`
	Audit     Count                `json:"audit"`
	Findings  map[string]int64     `json:"findings"`
	Examples  map[string][]Finding `json:"-"`
	Notes     []string             `json:"notes"`
	// IDs maps the KavachOS IDs of delegations and approvals to the IDs
	// they have in Kavach (agents keep theirs).
	IDs map[string]string `json:"ids"`
}

// examplesPerKind bounds the findings a report keeps in memory.
const examplesPerKind = 5

// findings records findings: counted in the report, streamed to w (a
// JSON array, when w is not nil).
type findings struct {
	r     *Report
	w     io.Writer
	err   error
	enc   *json.Encoder
	start bool
}

func newFindings(r *Report, w io.Writer) *findings {
	f := &findings{r: r, w: w}
	if w != nil {
		f.enc = json.NewEncoder(w)
	}
	return f
}

func (f *findings) add(x Finding) {
	x.Effect = kinds[x.Kind]
	if x.Effect == "" {
		panic("kavachos: finding of unknown kind " + x.Kind)
	}
	if f.r.Findings == nil {
		f.r.Findings, f.r.Examples = map[string]int64{}, map[string][]Finding{}
	}
	f.r.Findings[x.Kind]++
	if len(f.r.Examples[x.Kind]) < examplesPerKind {
		f.r.Examples[x.Kind] = append(f.r.Examples[x.Kind], x)
	}
	if f.enc == nil || f.err != nil {
		return
	}
	sep := ",\n"
	if !f.start {
		sep, f.start = `{"findings": [`+"\n", true
	}
	if _, f.err = io.WriteString(f.w, sep); f.err == nil {
		f.err = f.enc.Encode(x)
	}
}

// finish ends the JSON document with the report itself.
func (f *findings) finish() error {
	if f.enc == nil || f.err != nil {
		return f.err
	}
	head := "],\n"
	if !f.start {
		head = `{"findings": [],` + "\n"
	}
	b, err := json.MarshalIndent(f.r, "", "  ")
	if err != nil {
		return err
	}
	_, err = io.WriteString(f.w, head+`"report": `+string(b)+"}\n")
	return err
}

// Notes that hold for every import: what KavachOS did that Kavach does
// otherwise, whatever the data.
var commonNotes = []string{
	"authorize by agent ID: KavachOS ignored an agent's expiry unless its token had been used after it; Kavach denies an expired agent (agent_expired) either way",
	"authorize by token: KavachOS ignored delegated permissions; Kavach counts them (looser for agents that received delegations)",
	"delegations: KavachOS kept a delegation working after its delegator was revoked or its parent delegation expired; Kavach ends it (delegation_revoked, delegation_expired)",
	"maxCallsPerHour: KavachOS counted calls per agent and resource, denied ones included; Kavach counts the calls each permission allowed; the counts restart at the import",
	"allowedArgPatterns: JavaScript regular expressions are read as RE2: the same for the common syntax, but RE2's '.' also matches '\\r', U+2028 and U+2029, which JavaScript's does not",
}

// Print writes the report for a terminal: the counts, each kind of
// finding with its effect and a few examples, and the notes.
func (r *Report) Print(w io.Writer) {
	verb := "imported"
	if r.DryRun {
		verb = "would import (dry run)"
	}
	fmt.Fprintf(w, "KavachOS %s: %s\n", verb, r.Source)
	for _, c := range []struct {
		name string
		c    Count
	}{{"agents", r.Agents}, {"permissions", r.Perms}, {"delegations", r.Delegs}, {"approvals", r.Approvals}, {"audit rows", r.Audit}} {
		fmt.Fprintf(w, "  %-12s read %d, added %d, skipped (already present) %d, not imported %d\n",
			c.name, c.c.Read, c.c.Added, c.c.Skipped, c.c.NotImported)
	}
	if len(r.Findings) > 0 {
		fmt.Fprintln(w, "Differences (see --report for every one):")
	}
	names := make([]string, 0, len(r.Findings))
	for k := range r.Findings {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := strings.Compare(kinds[b], kinds[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, k := range names {
		fmt.Fprintf(w, "  %s (%s): %d\n", k, kinds[k], r.Findings[k])
		for _, x := range r.Examples[k] {
			where := x.SourceID
			if x.AgentID != "" {
				where = fmt.Sprintf("agent %s", x.AgentID)
				if x.Position > 0 {
					where += fmt.Sprintf(" permission %d %q", x.Position, x.Resource)
				}
			}
			fmt.Fprintf(w, "    %s: %s\n", where, x.Detail)
		}
	}
	fmt.Fprintln(w, "Differences that hold for every import:")
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  - %s\n", n)
	}
}
