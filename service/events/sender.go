package events

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// sender posts deliveries over kept-alive HTTP/1.1 connections, writing
// each request and reading its answer on the goroutine that sends it.
// net/http's Transport hands every request to two goroutines of the
// connection's (one writes, one reads) and back: three wake-ups a POST,
// which on a busy sidecar cost as much CPU as the POST itself. A delivery
// needs none of what they buy (pipelining, HTTP/2, request bodies of
// unknown length), so the sender does without them. Through a proxy (the
// HTTP_PROXY variables) it uses net/http's client instead.
type sender struct {
	dialer net.Dialer
	tls    *tls.Config
	// proxied sends what a proxy must carry.
	proxied *http.Client

	mu   sync.Mutex
	idle map[string][]*senderConn // by scheme and host:port
}

// senderConn is a connection with its buffers, idle or in use by one
// POST.
type senderConn struct {
	net.Conn
	r *bufio.Reader
	w *bufio.Writer
	// got counts the bytes read from the connection; left is how many
	// more the answer being read may take.
	got, left int64
}

// errLongAnswer ends an answer longer than an answer's head and maxAnswer
// of body: a receiver cannot make the sender hold more.
var errLongAnswer = errors.New("the receiver's answer is too long")

// maxAnswerHead bounds an answer's status line and headers.
const maxAnswerHead = 64 << 10

// counted reads c's connection, counting what it reads, within c.left.
type counted struct{ c *senderConn }

func (r counted) Read(p []byte) (int, error) {
	if r.c.left <= 0 {
		return 0, errLongAnswer
	}
	if int64(len(p)) > r.c.left {
		p = p[:r.c.left]
	}
	n, err := r.c.Read(p)
	r.c.got += int64(n)
	r.c.left -= int64(n)
	return n, err
}

// maxAnswer is as much of an answer's body as is read; a longer one
// closes the connection.
const maxAnswer = 64 << 10

func newSender(tlsConfig *tls.Config, proxied *http.Client) *sender {
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tlsConfig = tlsConfig.Clone()
	tlsConfig.NextProtos = []string{"http/1.1"}
	return &sender{dialer: net.Dialer{Timeout: attemptTimeout, KeepAlive: 30 * time.Second}, tls: tlsConfig,
		proxied: proxied, idle: map[string][]*senderConn{}}
}

// do sends req (its body a *bytes.Reader, as NewSignedRequest makes it)
// and returns the answer's status. It ends when req's context does.
func (s *sender) do(req *http.Request) (int, error) {
	if p, err := http.ProxyFromEnvironment(req); err != nil || p != nil {
		return sendWith(s.proxied, req)
	}
	key := hostPort(req)
	for again := false; ; again = true {
		c, fresh, err := s.conn(req.Context(), req.URL.Scheme, key)
		if err != nil {
			return 0, err
		}
		before := c.got
		status, keep, err := s.roundTrip(c, req)
		if keep {
			s.put(key, c)
		} else {
			_ = c.Close()
		}
		// A kept-alive connection the receiver closed meanwhile fails
		// with not a byte of an answer: send again on a fresh one, once.
		// (Had the receiver taken the request, it tells the repeat by its
		// webhook-id, as Standard Webhooks receivers must.)
		if err != nil && !fresh && !again && c.got == before && req.Context().Err() == nil {
			if req.GetBody != nil {
				if req.Body, err = req.GetBody(); err != nil {
					return 0, err
				}
			}
			continue
		}
		return status, err
	}
}

// roundTrip writes req on c and reads the answer, draining up to
// maxAnswer of its body; keep says whether c can carry another.
func (s *sender) roundTrip(c *senderConn, req *http.Request) (status int, keep bool, err error) {
	ctx := req.Context()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	} else {
		_ = c.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if err := req.Write(c.w); err != nil {
		return 0, false, err
	}
	if err := c.w.Flush(); err != nil {
		return 0, false, err
	}
	// What is buffered of an earlier answer counts against this one.
	c.left = maxAnswerHead + maxAnswer + 1 - int64(c.r.Buffered())
	resp, err := http.ReadResponse(c.r, req)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return 0, false, err
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer+1))
	_ = resp.Body.Close()
	keep = err == nil && n <= maxAnswer && !resp.Close && ctx.Err() == nil
	return resp.StatusCode, keep, nil
}

// conn is an idle connection to key, or a new one (fresh).
func (s *sender) conn(ctx context.Context, scheme, key string) (*senderConn, bool, error) {
	s.mu.Lock()
	if list := s.idle[key]; len(list) > 0 {
		c := list[len(list)-1]
		s.idle[key] = list[:len(list)-1]
		s.mu.Unlock()
		return c, false, nil
	}
	s.mu.Unlock()
	raw, err := s.dialer.DialContext(ctx, "tcp", key)
	if err != nil {
		return nil, true, err
	}
	nc := raw
	if scheme == "https" {
		cfg := s.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(key)
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, true, err
		}
		nc = tc
	}
	c := &senderConn{Conn: nc, w: bufio.NewWriterSize(nc, 4<<10)}
	c.r = bufio.NewReaderSize(counted{c}, 4<<10)
	return c, true, nil
}

// put keeps c for the next POST to key, up to perEndpoint a host.
func (s *sender) put(key string, c *senderConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.idle[key]) >= perEndpoint {
		_ = c.Close()
		return
	}
	s.idle[key] = append(s.idle[key], c)
}

// close closes the idle connections.
func (s *sender) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, list := range s.idle {
		for _, c := range list {
			_ = c.Close()
		}
		delete(s.idle, key)
	}
}

// hostPort is req's host with the scheme's port when it names none.
func hostPort(req *http.Request) string {
	host, port := req.URL.Hostname(), req.URL.Port()
	if port == "" {
		port = map[string]string{"https": "443"}[req.URL.Scheme]
		if port == "" {
			port = "80"
		}
	}
	return net.JoinHostPort(host, port)
}
