package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// checkDiagnosticAddress checks server.diagnosticAddress (--diagnostic-addr):
// a TCP host:port with a numeric port, since the kubelet's probes and
// Prometheus reach it over the network, and not the address of another
// listener of the sidecar.
func (s *Server) checkDiagnosticAddress() error {
	d := s.DiagnosticAddress
	if d == "" {
		return nil
	}
	const what = "server.diagnosticAddress (--diagnostic-addr)"
	if strings.HasPrefix(d, "unix://") {
		return fmt.Errorf("%s %q: the diagnostic listener is TCP (host:port, as in 0.0.0.0:9400): the kubelet's probes and Prometheus cannot reach a Unix socket", what, d)
	}
	host, port, ok := hostPort(d)
	if !ok {
		return fmt.Errorf("%s %q is not host:port with a port from 0 to 65535, as in 0.0.0.0:9400 or :9400", what, d)
	}
	for _, other := range []struct{ name, addr string }{
		{"server.address (--addr)", s.Address},
		{"server.publicAddress (--public-addr)", s.PublicAddress},
	} {
		h, p, ok := hostPort(other.addr)
		// Port 0 is a free port chosen at start: never the same twice.
		if ok && p == port && port != 0 && (h == host || wildcard(h) || wildcard(host)) {
			return fmt.Errorf("%s %q is the address of %s %q: give the diagnostic listener a port of its own, as in 0.0.0.0:9400",
				what, d, other.name, other.addr)
		}
	}
	return nil
}

// hostPort splits a TCP address; ok is false for anything else (a Unix
// socket, a named port).
func hostPort(addr string) (string, int, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, false
	}
	return host, p, true
}

// wildcard reports whether host listens on every address.
func wildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}
