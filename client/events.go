package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
)

// DeliveryFilter selects webhook deliveries (empty fields: any).
type DeliveryFilter struct {
	State, Type, Endpoint string
	Limit                 int
	Cursor                string
}

// ListWebhookDeliveries reads one page of webhook deliveries, newest first.
func (c *Client) ListWebhookDeliveries(ctx context.Context, f DeliveryFilter) (api.WebhookDeliveryList, error) {
	q := Page{Limit: f.Limit, Cursor: f.Cursor}.filtered(map[string]string{"state": f.State, "type": f.Type, "endpoint": f.Endpoint})
	var out api.WebhookDeliveryList
	return out, c.do(ctx, http.MethodGet, "/v1/webhooks/deliveries"+query(q), nil, "", &out)
}

// ListAllWebhookDeliveries reads every matching delivery from f.Cursor on,
// f.Limit per page, or only the first upTo (0: all).
func (c *Client) ListAllWebhookDeliveries(ctx context.Context, f DeliveryFilter, upTo int) (api.WebhookDeliveryList, error) {
	ds, next, err := listAll(Page{Limit: f.Limit, Cursor: f.Cursor}, upTo, func(p Page) ([]api.WebhookDelivery, string, error) {
		f.Limit, f.Cursor = p.Limit, p.Cursor
		l, err := c.ListWebhookDeliveries(ctx, f)
		return l.Deliveries, l.NextCursor, err
	})
	return api.WebhookDeliveryList{Deliveries: ds, NextCursor: next}, err
}

// EventStream selects the events StreamEvents follows.
type EventStream struct {
	// Types are event types (none: all); AgentID one agent's events.
	Types   []string
	AgentID string
	// After is the seq to resume after ("": the next event committed;
	// "0": every event still kept).
	After string
	// Reconnect, if positive, reconnects after a dropped stream (a
	// sidecar restart, a network error) with Last-Event-ID, waiting this
	// long first; 0 returns the error.
	Reconnect time.Duration
}

// StreamEvents follows GET /v1/events, calling fn for each event in
// order, until ctx ends (nil), fn returns an error (returned), or the
// stream fails and Reconnect is 0. A refused request (401, 403, 400) is
// returned at once whatever Reconnect says.
func (c *Client) StreamEvents(ctx context.Context, s EventStream, fn func(api.Event) error) error {
	last := s.After
	for {
		err, fnErr := c.stream(ctx, s, &last, fn)
		var apiErr *Error
		switch {
		case fnErr != nil:
			return fnErr
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &apiErr) && apiErr.Status < 500, s.Reconnect <= 0:
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.Reconnect):
		}
	}
}

// stream reads one connection's events: err says why the stream ended,
// fnErr is fn's error when fn stopped it.
func (c *Client) stream(ctx context.Context, s EventStream, last *string, fn func(api.Event) error) (err, fnErr error) {
	q := Page{}.filtered(map[string]string{"types": strings.Join(s.Types, ","), "agentId": s.AgentID})
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/events"+query(q), nil, "")
	if err != nil {
		return err, nil
	}
	req.Header.Set("Accept", "text/event-stream")
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	// A stream lasts as long as it lasts: no client timeout.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return fmt.Errorf("events: %w", err), nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readError(resp), nil
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				var ev api.Event
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					return fmt.Errorf("events: decode event %s: %w", id, err), nil
				}
				if err := fn(ev); err != nil {
					return nil, err
				}
				if id != "" {
					*last = id
				}
			}
			id, data = "", ""
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
			if _, err := strconv.ParseInt(id, 10, 64); err != nil {
				return fmt.Errorf("events: bad id %q", id), nil
			}
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("events: %w", err), nil
	}
	return fmt.Errorf("events: %w", io.ErrUnexpectedEOF), nil
}
