package events

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
	idle map[string][]*senderConn // by scheme://host:port
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
	// idleSince is when it was last put back.
	idleSince time.Time
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
	// Connections are kept by scheme and address: an https delivery never
	// goes out on a plain connection to the same host and port.
	addr := hostPort(req)
	key := req.URL.Scheme + "://" + addr
	for again := false; ; again = true {
		c, fresh, err := s.conn(req.Context(), req.URL.Scheme, addr, key, again)
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
		// with not a byte of an answer: send again, once, on a new
		// connection, and drop the others kept for the receiver, which
		// has likely closed them too. (Had the receiver taken the
		// request, it tells the repeat by its webhook-id, as Standard
		// Webhooks receivers must.)
		if err != nil && !fresh && !again && c.got == before && req.Context().Err() == nil {
			s.drop(key)
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

// maxInformational bounds the 1xx answers read before the final one.
const maxInformational = 5

// roundTrip writes req on c and reads the answer (past any 1xx ones),
// draining up to maxAnswer of its body; keep says whether c can carry
// another: not if anything is left on it after the answer, which would
// otherwise be read as the next request's.
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
	c.left = maxAnswerHead + maxAnswer + 1
	var resp *http.Response
	for i := 0; ; i++ {
		resp, err = http.ReadResponse(c.r, req)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return 0, false, err
		}
		informational := resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols
		if !informational {
			break
		}
		if i == maxInformational {
			return 0, false, fmt.Errorf("the receiver answered more than %d informational (1xx) answers", maxInformational)
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, false, errors.New("the receiver switched protocols, which no delivery asks for")
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer+1))
	_ = resp.Body.Close()
	keep = err == nil && n <= maxAnswer && !resp.Close && ctx.Err() == nil && c.r.Buffered() == 0
	return resp.StatusCode, keep, nil
}

// maxIdle is how long a connection is kept unused: less than receivers
// commonly keep theirs open.
const maxIdle = 30 * time.Second

// conn is a live idle connection kept under key, unless fresh is asked
// for, or a new one to addr (new reports which).
func (s *sender) conn(ctx context.Context, scheme, addr, key string, fresh bool) (_ *senderConn, isNew bool, _ error) {
	for !fresh {
		s.mu.Lock()
		list := s.idle[key]
		if len(list) == 0 {
			s.mu.Unlock()
			break
		}
		c := list[len(list)-1]
		s.idle[key] = list[:len(list)-1]
		s.mu.Unlock()
		if time.Since(c.idleSince) < maxIdle && c.alive() {
			return c, false, nil
		}
		_ = c.Close()
	}
	raw, err := s.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, true, err
	}
	nc := raw
	if scheme == "https" {
		cfg := s.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
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

// alive reports whether an idle connection is still open and has sent
// nothing unasked: a read that must not block times out.
func (c *senderConn) alive() bool {
	if c.r.Buffered() > 0 {
		return false
	}
	_ = c.SetReadDeadline(time.Now())
	var b [1]byte
	n, err := c.Read(b[:])
	_ = c.SetReadDeadline(time.Time{})
	var ne net.Error
	return n == 0 && errors.As(err, &ne) && ne.Timeout()
}

// drop closes the connections kept under key.
func (s *sender) drop(key string) {
	s.mu.Lock()
	list := s.idle[key]
	delete(s.idle, key)
	s.mu.Unlock()
	for _, c := range list {
		_ = c.Close()
	}
}

// put keeps c for the next POST to key, up to perEndpoint a host.
func (s *sender) put(key string, c *senderConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.idle[key]) >= perEndpoint {
		_ = c.Close()
		return
	}
	c.idleSince = time.Now()
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
