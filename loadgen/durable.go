package loadgen

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// maxFloorRow bounds the request body a durable floor writes as a row.
const maxFloorRow = 64 << 10

// durableRow is one request's row, waiting to be on disk.
type durableRow struct {
	row  []byte
	done chan error
}

// DurableFloorHandler answers every request with the floor's fixed
// decision, but only once a row for it (its arrival time and body) is
// appended to f and fsynced: one write and one fsync for all the rows that
// arrived while the previous ones were being synced (group commit). It is
// the least any sidecar that answers after its audit row is on disk can
// cost on this machine. The committer runs until ctx ends.
func DurableFloorHandler(ctx context.Context, f *os.File) http.Handler {
	rows := make(chan durableRow, 4096)
	go commitRows(ctx, f, rows)
	body := []byte(`{"allowed":true,"code":"allowed","reason":"durable floor","auditId":"aud_floor"}` + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxFloorRow))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		row := strconv.AppendInt(nil, time.Now().UnixMicro(), 10)
		row = append(append(append(row, ' '), b...), '\n')
		done := make(chan error, 1)
		select {
		case rows <- durableRow{row: row, done: done}:
		case <-r.Context().Done():
			return
		}
		if err := <-done; err != nil {
			http.Error(w, "write", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// commitRows appends batches of rows to f, fsyncing each batch before it
// answers the batch's requests.
func commitRows(ctx context.Context, f *os.File, rows <-chan durableRow) {
	var batch []durableRow
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return
		case first := <-rows:
			batch, buf = append(batch[:0], first), append(buf[:0], first.row...)
		}
	more:
		for len(batch) < cap(rows) {
			select {
			case r := <-rows:
				batch, buf = append(batch, r), append(buf, r.row...)
			default:
				break more
			}
		}
		_, err := f.Write(buf)
		if err == nil {
			err = f.Sync()
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}
