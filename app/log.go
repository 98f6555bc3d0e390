package app

import (
	"log/slog"

	"github.com/kavach-dev/kavach/api"
)

// LogTimes is a slog ReplaceAttr that writes every time of a log line, the
// line's own included, as the API writes times (api.TimeFormat: UTC, to
// the millisecond, one width), where slog's JSON handler would write the
// local time to the nanosecond without trailing zeros.
func LogTimes(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindTime {
		return slog.String(a.Key, api.FormatTime(a.Value.Time()))
	}
	return a
}
