package events

import (
	"encoding/json"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

// withApprovalURL adds the approval's signed link to an approval.requested
// event, as url in its data (and in the legacy "approval" object), when
// links are on. The link is made at delivery, never stored: the events
// table, which auditors read through GET /v1/events, holds no credential.
// It is the same on every attempt (an HMAC of what the event names), so a
// retried delivery carries the same body.
func (e *Events) withApprovalURL(ev domain.Event) domain.Event {
	if ev.Type != domain.EventApprovalRequested || e.opts.ApprovalURL == nil {
		return ev
	}
	var d map[string]json.RawMessage
	if json.Unmarshal(ev.Data, &d) != nil {
		return ev
	}
	var id, owner string
	var expires api.Time
	if json.Unmarshal(d["approvalId"], &id) != nil || json.Unmarshal(d["ownerId"], &owner) != nil ||
		json.Unmarshal(d["expiresAt"], &expires) != nil {
		return ev
	}
	link := e.opts.ApprovalURL(id, owner, expires.Time)
	if link == "" {
		return ev
	}
	u, _ := json.Marshal(link)
	d["url"] = u
	if raw, ok := d["approval"]; ok {
		var a map[string]json.RawMessage
		if json.Unmarshal(raw, &a) == nil {
			a["url"] = u
			if b, err := json.Marshal(a); err == nil {
				d["approval"] = b
			}
		}
	}
	if b, err := json.Marshal(d); err == nil {
		ev.Data = b
	}
	return ev
}
