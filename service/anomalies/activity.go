package anomalies

import (
	"fmt"
	"time"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/store"
)

// probeCode is the denial of a resource no permission of the agent
// covers: asking for what it never held.
const probeCode = "no_permission"

// maxProbesPerFold bounds the probed resources one fold records per agent
// and hour beyond the threshold: enough to cross it and fill the evidence.
const maxProbesPerFold = store.MaxEvidenceIDs

// activity groups drained rows by agent and hour: calls, denials that are
// no question for a human, allowed calls, probed resources; and the
// off_hours findings, one per agent and day.
func (s *Anomalies) activity(rows []store.CommittedDecision) []store.AgentActivity {
	type hourKey struct {
		agent string
		hour  int64
	}
	type dayKey struct {
		agent string
		day   time.Time
	}
	var out []store.AgentActivity
	agents := map[string]int{}
	hours := map[hourKey]int{}
	probed := map[hourKey]map[string]bool{}
	off := map[dayKey]*store.Finding{}
	var offOrder []dayKey
	for _, r := range rows {
		ai, ok := agents[r.AgentID]
		if !ok {
			ai = len(out)
			agents[r.AgentID] = ai
			out = append(out, store.AgentActivity{AgentID: r.AgentID})
		}
		a := &out[ai]
		hour := r.At.UTC().Truncate(time.Hour)
		hk := hourKey{r.AgentID, hour.UnixMilli()}
		hi, ok := hours[hk]
		if !ok {
			hi = len(a.Hours)
			hours[hk] = hi
			a.Hours = append(a.Hours, store.HourActivity{Hour: hour})
		}
		h := &a.Hours[hi]
		h.Calls++
		switch {
		case !r.Denied:
			h.Allowed++
		case !r.Approval:
			h.Denials++
		}
		if r.Denied && r.Code == probeCode && !s.known[knownKey{r.AgentID, domain.AnomalyProbing, hk.hour}] {
			seen := probed[hk]
			if seen == nil {
				// The resources this replica recorded already in the hour
				// need no new row.
				seen = s.probed[hk.hour][r.AgentID]
				if seen == nil {
					seen = map[string]bool{}
					if s.probed[hk.hour] == nil {
						s.probed[hk.hour] = map[string]map[string]bool{}
					}
					s.probed[hk.hour][r.AgentID] = seen
				}
				probed[hk] = seen
			}
			if !seen[r.Resource] && len(seen) < s.opts.Probing+maxProbesPerFold {
				seen[r.Resource] = true
				h.Probes = append(h.Probes, store.Probe{Resource: r.Resource, AuditID: r.AuditID})
			}
		}
		if day, outside := s.offHours(r.At); outside {
			dk := dayKey{r.AgentID, day}
			f := off[dk]
			if f == nil {
				f = &store.Finding{Type: domain.AnomalyOffHours, Severity: domain.SeverityLow, Window: day, Source: store.EvidenceGiven}
				off[dk] = f
				offOrder = append(offOrder, dk)
			}
			f.AuditIDs = append(f.AuditIDs, r.AuditID)
			if len(f.AuditIDs) > store.MaxEvidenceIDs {
				f.AuditIDs = f.AuditIDs[1:]
			}
			f.Counts = map[string]any{"calls": countOf(f) + 1, "expectedHours": s.expected(), "timezone": s.opts.Location.String()}
			f.Description = fmt.Sprintf("%d call(s) outside the expected hours %s, the last at %s", countOf(f),
				s.expected(), r.At.In(s.opts.Location).Format("2006-01-02 15:04 MST"))
		}
	}
	// Forget the resources of hours past: no fold counts them again.
	for hour := range s.probed {
		if hour < s.now().Add(-2*time.Hour).UnixMilli() {
			delete(s.probed, hour)
		}
	}
	for _, dk := range offOrder {
		a := &out[agents[dk.agent]]
		a.Findings = append(a.Findings, *off[dk])
	}
	return out
}

func countOf(f *store.Finding) int {
	n, _ := f.Counts["calls"].(int)
	return n
}

// offHours reports whether a call at t falls outside the expected hours,
// and the start of its day (in the expected hours' zone), the window of
// an off_hours anomaly.
func (s *Anomalies) offHours(t time.Time) (time.Time, bool) {
	eh := s.opts.ExpectedHours
	if eh == nil {
		return time.Time{}, false
	}
	local := t.In(s.opts.Location)
	h, start, end := local.Hour(), eh[0], eh[1]
	in := start <= h && h < end
	if start > end { // across midnight
		in = h >= start || h < end
	}
	y, m, d := local.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, s.opts.Location).UTC(), !in
}

// expected writes the expected hours: "09:00-18:00".
func (s *Anomalies) expected() string {
	return fmt.Sprintf("%02d:00-%02d:00", s.opts.ExpectedHours[0], s.opts.ExpectedHours[1])
}

// merge adds the activity of b to that of a (activity kept after a failed
// fold, and the next): hours of one agent add up, findings join.
func merge(a, b []store.AgentActivity) []store.AgentActivity {
	if len(a) == 0 {
		return b
	}
	idx := map[string]int{}
	for i, x := range a {
		idx[x.AgentID] = i
	}
	for _, x := range b {
		i, ok := idx[x.AgentID]
		if !ok {
			idx[x.AgentID] = len(a)
			a = append(a, x)
			continue
		}
		dst := &a[i]
		dst.Findings = append(dst.Findings, x.Findings...)
	hours:
		for _, h := range x.Hours {
			for j := range dst.Hours {
				if dst.Hours[j].Hour.Equal(h.Hour) {
					d := &dst.Hours[j]
					d.Calls, d.Denials, d.Allowed = d.Calls+h.Calls, d.Denials+h.Denials, d.Allowed+h.Allowed
					d.Probes = append(d.Probes, h.Probes...)
					continue hours
				}
			}
			dst.Hours = append(dst.Hours, h)
		}
	}
	return a
}
