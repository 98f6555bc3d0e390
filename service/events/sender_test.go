package events

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// conns counts the connections a test server accepted.
func conns(ts *httptest.Server) *atomic.Int32 {
	var n atomic.Int32
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func signedPost(ctx context.Context, t *testing.T, url, body string) *http.Request {
	t.Helper()
	req, err := NewSignedRequest(ctx, url, "msg_1", 1700000000, []byte(body), [][]byte{[]byte("0123456789abcdef01234567")})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// The sender's POSTs reach the receiver whole, with the Standard Webhooks
// headers, over one kept-alive connection per concurrent POST, in plain
// HTTP and over TLS.
func TestSenderKeepsConnectionsAlive(t *testing.T) {
	t.Parallel()
	for _, tlsOn := range []bool{false, true} {
		var mu sync.Mutex
		var got []string
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("webhook-id")+" "+
				r.Header.Get("Content-Type")+" "+string(b))
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}))
		n := conns(ts)
		var cfg *tls.Config
		if tlsOn {
			ts.StartTLS()
			cfg = &tls.Config{RootCAs: ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, MinVersion: tls.VersionTLS12}
		} else {
			ts.Start()
		}
		s := newSender(cfg, http.DefaultClient)
		for i := range 20 {
			status, err := s.do(signedPost(t.Context(), t, ts.URL+"/hook?x=1", `{"n":`+string(rune('0'+i%10))+`}`))
			if err != nil || status != http.StatusNoContent {
				t.Fatalf("tls %v: POST %d = %d, %v; want 204", tlsOn, i, status, err)
			}
		}
		if n.Load() != 1 {
			t.Errorf("tls %v: 20 POSTs one after the other opened %d connections; want 1", tlsOn, n.Load())
		}
		if len(got) != 20 || got[3] != `POST /hook?x=1 msg_1 application/json {"n":3}` {
			t.Errorf("tls %v: receiver got %d requests, the 4th %q", tlsOn, len(got), got[3])
		}
		s.close()
		ts.Close()
	}
}

// A receiver that closes kept-alive connections is sent to again on a new
// one; an answer it closes after, or one too long to read, is not reused.
func TestSenderRecoversClosedConnections(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch calls.Add(1) {
		case 2:
			w.Header().Set("Connection", "close")
		case 3:
			_, _ = w.Write(bytes.Repeat([]byte("x"), maxAnswer+10))
		}
	}))
	n := conns(ts)
	ts.Start()
	defer ts.Close()
	s := newSender(nil, http.DefaultClient)
	defer s.close()
	post := func() {
		t.Helper()
		if status, err := s.do(signedPost(t.Context(), t, ts.URL, `{}`)); err != nil || status != http.StatusOK {
			t.Fatalf("POST = %d, %v; want 200", status, err)
		}
	}
	post()
	post() // answered with Connection: close
	post() // a long answer: the connection is dropped after it
	post()
	if n.Load() != 3 {
		t.Errorf("connections = %d; want 3 (one closed by the receiver, one after a long answer)", n.Load())
	}
	// The receiver drops its idle connections (a restart, an idle
	// timeout): the next POST goes out on a fresh one and succeeds.
	ts.CloseClientConnections()
	post()
	if n.Load() != 4 || calls.Load() != 5 {
		t.Errorf("after the receiver closed the idle connection: connections %d, calls %d; want 4 and 5", n.Load(), calls.Load())
	}
}

// An attempt ends at its context's deadline, and a non-2xx answer is
// returned as it is.
func TestSenderDeadlineAndStatus(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			<-release
		}
		http.Error(w, "gone", http.StatusGone)
	}))
	defer ts.Close()
	defer close(release)
	s := newSender(nil, http.DefaultClient)
	defer s.close()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s.do(signedPost(ctx, t, ts.URL+"/slow", `{}`)); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("slow receiver: err %v after %v; want a timeout at the deadline", err, time.Since(start))
	}
	if status, err := s.do(signedPost(t.Context(), t, ts.URL+"/fast", `{}`)); err != nil || status != http.StatusGone {
		t.Errorf("POST = %d, %v; want 410", status, err)
	}
	if _, err := s.do(signedPost(t.Context(), t, "http://127.0.0.1:1/none", `{}`)); err == nil {
		t.Error("POST to a closed port succeeded")
	}
}

// A receiver answering with endless headers gets an error, not the
// sender's memory.
func TestSenderBoundsTheAnswer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		buf := make([]byte, 4096)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\n"))
		line := []byte("X-Filler: " + strings.Repeat("a", 1000) + "\r\n")
		for range 10_000 { // 10 MB of headers
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	}()
	s := newSender(nil, http.DefaultClient)
	defer s.close()
	if _, err := s.do(signedPost(t.Context(), t, "http://"+ln.Addr().String()+"/", `{}`)); err == nil {
		t.Error("an answer with 10 MB of headers was accepted")
	}
}

// rawReceiver accepts connections and answers each request with what
// answer gives for the n-th request (counting from 1) on any connection.
func rawReceiver(t *testing.T, answer func(n int) string) (url string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	conns = new(atomic.Int32)
	var requests atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer func() { _ = c.Close() }()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if _, err := io.WriteString(c, answer(int(requests.Add(1)))); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), conns
}

// Informational answers are read past; bytes left on a connection after
// an answer close it, so they are never taken for the next delivery's
// answer.
func TestSenderNeverTakesAStaleAnswer(t *testing.T) {
	t.Parallel()
	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	const fail = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
	url, conns := rawReceiver(t, func(n int) string {
		switch n {
		case 1:
			return "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n" + ok
		case 3:
			return ok + ok // an answer too many: left on the connection
		}
		return fail
	})
	s := newSender(nil, http.DefaultClient)
	defer s.close()
	want := []int{200, 500, 200, 500}
	for i, w := range want {
		status, err := s.do(signedPost(t.Context(), t, url+"/hook", `{}`))
		if err != nil || status != w {
			t.Errorf("delivery %d = %d, %v; want %d", i+1, status, err, w)
		}
	}
	if conns.Load() != 2 {
		t.Errorf("connections = %d; want 2 (the one left with a stray answer closed)", conns.Load())
	}
}

// An https endpoint never reuses a plain connection kept for the same
// host and port.
func TestSenderKeysConnectionsByScheme(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer ts.Close()
	s := newSender(nil, http.DefaultClient)
	defer s.close()
	if status, err := s.do(signedPost(t.Context(), t, ts.URL+"/plain", `{}`)); err != nil || status != http.StatusNoContent {
		t.Fatalf("plain POST = %d, %v", status, err)
	}
	secure := strings.Replace(ts.URL, "http://", "https://", 1) + "/secret"
	if status, err := s.do(signedPost(t.Context(), t, secure, `{}`)); err == nil {
		t.Errorf("https POST to a plain listener = %d; want a TLS failure, not the kept plain connection", status)
	}
}

// A receiver that drops idle connections after a short keep-alive (as
// Node's servers do after 5 s) costs no failed delivery.
func TestSenderSkipsConnectionsTheReceiverClosed(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		calls.Add(1)
	}))
	ts.Config.IdleTimeout = 50 * time.Millisecond
	ts.Start()
	defer ts.Close()
	s := newSender(nil, http.DefaultClient)
	defer s.close()
	var wg sync.WaitGroup
	for range 3 { // three connections kept
		wg.Go(func() {
			if status, err := s.do(signedPost(t.Context(), t, ts.URL, `{}`)); err != nil || status != http.StatusOK {
				t.Errorf("POST = %d, %v", status, err)
			}
		})
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond) // the receiver closes them meanwhile
	for i := range 3 {
		if status, err := s.do(signedPost(t.Context(), t, ts.URL, `{}`)); err != nil || status != http.StatusOK {
			t.Errorf("POST %d after the receiver's idle timeout = %d, %v; want 200", i, status, err)
		}
	}
	if calls.Load() != 6 {
		t.Errorf("receiver got %d requests; want 6 (none lost, none twice)", calls.Load())
	}
}
