package sidecar_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/store"
)

// listPage is one page of any list, as the wire carries it: the items
// under the list's key, and nextCursor.
type listPage struct {
	items      []string // IDs
	nextCursor *string  // nil when the key is missing
}

// getPage GETs path and decodes its page (key: the list's key).
func (e *env) getPage(t *testing.T, path, key string) (int, listPage, []byte) {
	t.Helper()
	status, body := e.do(t, http.MethodGet, path, "")
	if status != http.StatusOK {
		return status, listPage{}, body
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("GET %s: %v in %.200s", path, err, body)
	}
	var items []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw[key], &items); err != nil || items == nil {
		t.Fatalf("GET %s: %q is not a list (%v): %.200s", path, key, err, body)
	}
	var p listPage
	for _, it := range items {
		p.items = append(p.items, it.ID)
	}
	if c, ok := raw["nextCursor"]; ok {
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			t.Fatalf("GET %s: nextCursor %s is not a string", path, c)
		}
		p.nextCursor = &s
	}
	return status, p, body
}

// walkPages follows nextCursor from path (which has a query) with limit
// items a page, and returns the IDs in order and the number of pages.
func (e *env) walkPages(t *testing.T, path, key string, limit int) ([]string, int) {
	t.Helper()
	var ids []string
	cursor := ""
	for pages := 1; pages < 10000; pages++ {
		u := fmt.Sprintf("%s&limit=%d", path, limit)
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		status, p, body := e.getPage(t, u, key)
		if status != http.StatusOK || p.nextCursor == nil {
			t.Fatalf("GET %s = %d %.300s; want 200 with nextCursor", u, status, body)
		}
		if len(p.items) > limit || *p.nextCursor != "" && len(p.items) != limit {
			t.Fatalf("GET %s = %d items, nextCursor %q; want %d (fewer only on the last page)", u, len(p.items), *p.nextCursor, limit)
		}
		ids = append(ids, p.items...)
		if *p.nextCursor == "" {
			return ids, pages
		}
		cursor = *p.nextCursor
	}
	t.Fatalf("GET %s: the cursor does not advance", path)
	return nil, 0
}

// seedLists writes, straight to the store, agents (two owners alternating,
// oldest first), delegations to and from the first agent, approvals of the
// first agent (newest first), and API keys (oldest first).
func seedLists(t *testing.T, st *store.Store, now time.Time, agents, others int) (ags, dls, aprs, keys []string) {
	t.Helper()
	ctx := t.Context()
	for i := range agents {
		a, err := st.CreateAgent(ctx, domain.Agent{OwnerID: fmt.Sprintf("owner-%d", i%2), Name: "a", Type: "autonomous",
			TokenHash: fmt.Sprintf("seed-%d", i), Permissions: []domain.Permission{{Resource: "r", Actions: []string{"read"}}}}, 0)
		if err != nil {
			t.Fatal(err)
		}
		ags = append(ags, a.ID)
	}
	for i := range others {
		from, to := ags[0], ags[1+i%(len(ags)-1)]
		if i%2 == 1 {
			from, to = to, from
		}
		d, err := st.CreateDelegation(ctx, domain.Delegation{FromAgent: from, ToAgent: to, Depth: 1, MaxDepth: 1, ExpiresAt: now.Add(time.Hour),
			Permissions: []domain.Grant{{Resource: "r", Actions: []string{"read"}, Chain: []domain.Link{}, CoveredBy: from + "#0"}}})
		if err != nil {
			t.Fatal(err)
		}
		dls = append(dls, d.ID)
		ap, err := st.CreateApproval(ctx, domain.Approval{AgentID: ags[0], OwnerID: "owner-0", Action: "execute",
			Resource: fmt.Sprintf("r:%d", i), ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		aprs = append(aprs, ap.ID)
		k, err := st.CreateKey(ctx, domain.APIKey{Name: "k", Roles: []string{"auditor"}, Hash: fmt.Sprintf("seed-key-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.ID)
	}
	slices.Reverse(aprs)
	return ags, dls, aprs, keys
}

// Every list is paged: 100 items by default, at most 1000, nextCursor
// ("" on the last page) walks the rest, each item once and in order;
// filters combine with paging.
func TestListsArePaged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	agents, dls, aprs, keys := seedLists(t, e.st, e.clock.Now(), 1003, 12)

	t.Run("default 100, at most 1000", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			want []string
			last bool
		}{
			{"/v1/agents", agents[:100], false},
			{"/v1/agents?limit=1000", agents[:1000], false},
			{"/v1/agents?limit=1000&cursor=" + agents[999], agents[1000:], true},
			{"/v1/agents?limit=3&cursor=" + agents[999], agents[1000:], true}, // exactly full, yet the last
			{"/v1/agents?limit=2&cursor=" + agents[999], agents[1000:1002], false},
		} {
			status, p, body := e.getPage(t, tc.path, "agents")
			if status != http.StatusOK || !slices.Equal(p.items, tc.want) || p.nextCursor == nil ||
				tc.last && *p.nextCursor != "" || !tc.last && *p.nextCursor != tc.want[len(tc.want)-1] {
				t.Errorf("GET %s = %d, %d items, nextCursor %v; want %d items, last page %v (%.200s)",
					tc.path, status, len(p.items), p.nextCursor, len(tc.want), tc.last, body)
			}
		}
	})

	t.Run("nextCursor walks every list", func(t *testing.T) {
		owner0 := []string{}
		for i, id := range agents {
			if i%2 == 0 {
				owner0 = append(owner0, id)
			}
		}
		for _, tc := range []struct {
			path, key string
			limit     int
			want      []string
		}{
			{"/v1/agents?", "agents", 97, agents},
			{"/v1/agents?ownerId=owner-0&status=active", "agents", 50, owner0},
			{"/v1/agents?ownerId=owner-0&status=revoked", "agents", 50, nil},
			{"/v1/agents/" + agents[0] + "/delegations?", "delegations", 5, dls},
			{"/v1/agents/" + agents[2] + "/delegations?", "delegations", 1, []string{dls[1]}},
			{"/v1/approvals?agentId=" + agents[0], "approvals", 5, aprs},
			{"/v1/approvals?status=pending&ownerId=owner-0", "approvals", 12, aprs},
			{"/v1/approvals?status=denied", "approvals", 5, nil},
			{"/v1/keys?", "keys", 4, keys},
		} {
			got, pages := e.walkPages(t, tc.path, tc.key, tc.limit)
			if !slices.Equal(got, tc.want) || pages != max(1, (len(tc.want)+tc.limit-1)/tc.limit) {
				t.Errorf("%s page by page (limit %d) = %d items in %d pages; want %d, each once, in order",
					tc.path, tc.limit, len(got), pages, len(tc.want))
			}
		}
	})

	t.Run("the Go client pages for you", func(t *testing.T) {
		ctx := t.Context()
		all, err := e.cl.ListAllAgents(ctx, client.AgentFilter{}, 0)
		if err != nil || !slices.Equal(ids(all.Agents, func(a api.Agent) string { return a.ID }), agents) || all.NextCursor != "" {
			t.Errorf("ListAllAgents = %d agents, next %q, %v; want all %d", len(all.Agents), all.NextCursor, err, len(agents))
		}
		// A cap ends on a page boundary, with the cursor that continues.
		first, err := e.cl.ListAllAgents(ctx, client.AgentFilter{OwnerID: "owner-1", Limit: 40}, 150)
		if err != nil || len(first.Agents) != 150 || first.NextCursor != first.Agents[149].ID {
			t.Fatalf("ListAllAgents(owner-1, 150) = %d agents, next %q, %v; want 150 and the cursor after them", len(first.Agents), first.NextCursor, err)
		}
		rest, err := e.cl.ListAllAgents(ctx, client.AgentFilter{OwnerID: "owner-1", Cursor: first.NextCursor}, 0)
		got := ids(append(first.Agents, rest.Agents...), func(a api.Agent) string { return a.ID })
		want := []string{}
		for i, id := range agents {
			if i%2 == 1 {
				want = append(want, id)
			}
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ListAllAgents(owner-1) in two calls = %d agents, %v; want %d, each once", len(got), err, len(want))
		}
		ds, err := e.cl.ListAllDelegations(ctx, agents[0], client.Page{Limit: 5}, 0)
		if err != nil || !slices.Equal(ids(ds.Delegations, func(d api.Delegation) string { return d.ID }), dls) {
			t.Errorf("ListAllDelegations = %d, %v; want %d", len(ds.Delegations), err, len(dls))
		}
		as, err := e.cl.ListAllApprovals(ctx, client.ApprovalFilter{AgentID: agents[0], Limit: 5}, 0)
		if err != nil || !slices.Equal(ids(as.Approvals, func(a api.Approval) string { return a.ID }), aprs) {
			t.Errorf("ListAllApprovals = %d, %v; want %d", len(as.Approvals), err, len(aprs))
		}
		ks, err := e.cl.ListAllKeys(ctx, client.Page{Limit: 5}, 0)
		if err != nil || !slices.Equal(ids(ks.Keys, func(k api.APIKey) string { return k.ID }), keys) {
			t.Errorf("ListAllKeys = %d, %v; want %d", len(ks.Keys), err, len(keys))
		}
	})
}

func ids[T any](list []T, id func(T) string) []string {
	out := []string{}
	for _, v := range list {
		out = append(out, id(v))
	}
	return out
}

// A limit that is not an integer from 1 to 1000, or a cursor that is not
// a nextCursor of that list, is 400 invalid_parameter on every list.
func TestBadPagingParametersAre400(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n"})
	lists := map[string]string{ // path → the prefix of its IDs
		"/v1/agents?":                          "agt_",
		"/v1/agents?ownerId=u&":                "agt_",
		"/v1/agents/" + a.ID + "/delegations?": "dlg_",
		"/v1/approvals?":                       "apr_",
		"/v1/keys?":                            "key_",
		"/v1/audit?":                           "aud_",
		"/v1/anomalies?":                       "anm_",
	}
	for path, prefix := range lists {
		for _, q := range []string{"limit=0", "limit=-1", "limit=1001", "limit=abc", "limit=1.5", "limit=1e3", "limit=0x10",
			"limit=99999999999999999999", "cursor=x", "cursor=" + prefix + "unknown", "cursor=" + a.ID[4:], "cursor=" + other(prefix) + a.ID[4:],
			"cursor=" + prefix + a.ID[4:] + "0", "cursor=" + prefix + "0000000000000000000000000u"} {
			status, body := e.do(t, http.MethodGet, path+q, "")
			var eb api.ErrorBody
			if err := json.Unmarshal(body, &eb); status != http.StatusBadRequest || err != nil || eb.Error.Code != "invalid_parameter" || eb.Error.Message == "" {
				t.Errorf("GET %s%s = %d %.200s; want 400 invalid_parameter with a message", path, q, status, body)
			}
		}
		// The bounds themselves, empty values (the defaults) and a well
		// formed cursor that names no row are fine.
		for _, q := range []string{"limit=1", "limit=1000", "limit=", "cursor=", "cursor=" + prefix + "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"} {
			if status, body := e.do(t, http.MethodGet, path+q, ""); status != http.StatusOK {
				t.Errorf("GET %s%s = %d %.200s; want 200", path, q, status, body)
			}
		}
	}
}

// other is an ID prefix that is not prefix.
func other(prefix string) string {
	if prefix == "agt_" {
		return "key_"
	}
	return "agt_"
}
