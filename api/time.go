package api

import (
	"errors"
	"time"
)

// TimeFormat is how Kavach writes every time: RFC 3339 in UTC with exactly
// three fraction digits ("2026-01-02T15:04:05.300Z"), so that every time has
// the same width and times sort as strings. Format with FormatTime, which
// converts to UTC first (this layout prints an offset for any other zone).
// Times Kavach reads may be any RFC 3339 time, with or without a fraction,
// in any offset.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// FormatTime writes t in TimeFormat: in UTC, to the millisecond (truncated,
// as the database keeps it).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Time is a time on the wire: it marshals as TimeFormat, and unmarshals
// from any RFC 3339 time, into UTC to the millisecond (what Kavach keeps),
// so a Time equals itself after a round trip through JSON. Every time in
// this package is a Time, so none can be written otherwise. The embedded
// time.Time gives it the time's methods (Before, Sub, Unix, …).
type Time struct {
	time.Time
}

// NewTime is t as a Time, in UTC and to the millisecond: what a client
// reads back after the round trip through JSON.
func NewTime(t time.Time) Time { return Time{t.UTC().Truncate(time.Millisecond)} }

// NewTimePtr is NewTime of *t, or nil for nil.
func NewTimePtr(t *time.Time) *Time {
	if t == nil {
		return nil
	}
	v := NewTime(*t)
	return &v
}

// Std is t's time, or nil when t is nil: for the optional times
// (ExpiresAt, RevokedAt, …).
func (t *Time) Std() *time.Time {
	if t == nil {
		return nil
	}
	v := t.Time
	return &v
}

// String is t in TimeFormat.
func (t Time) String() string { return FormatTime(t.Time) }

// MarshalText writes t in TimeFormat; a year outside 0 to 9999 is an error,
// as it is for time.Time.
func (t Time) MarshalText() ([]byte, error) {
	u := t.UTC()
	if y := u.Year(); y < 0 || y > 9999 {
		return nil, errors.New("api.Time: year outside of range [0,9999]")
	}
	return u.AppendFormat(make([]byte, 0, len(TimeFormat)), TimeFormat), nil
}

// MarshalJSON writes t as a JSON string in TimeFormat.
func (t Time) MarshalJSON() ([]byte, error) {
	b, err := t.MarshalText()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+2)
	out = append(out, '"')
	out = append(out, b...)
	return append(out, '"'), nil
}

// UnmarshalText reads any RFC 3339 time, with or without a fraction, in
// any offset (as NewTime: in UTC, to the millisecond).
func (t *Time) UnmarshalText(b []byte) error {
	var v time.Time
	if err := v.UnmarshalText(b); err != nil {
		return err
	}
	*t = NewTime(v)
	return nil
}

// UnmarshalJSON reads a JSON string holding any RFC 3339 time (as
// UnmarshalText); null leaves t as it is, as it does a time.Time.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var v time.Time
	if err := v.UnmarshalJSON(b); err != nil {
		return err
	}
	*t = NewTime(v)
	return nil
}
