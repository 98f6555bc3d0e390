package config

import (
	"strings"
	"testing"
)

func TestDiagnosticAddress(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr, public, diagnostic string
		err                      string // "" when valid
	}{
		{"", "", "", ""},
		{"", "", "0.0.0.0:9400", ""},
		{"", "", ":9400", ""},
		{"", "", "[::]:9400", ""},
		{"unix:///var/run/kavach/kavach.sock", "", "0.0.0.0:9400", ""},
		{"127.0.0.1:0", "", "127.0.0.1:0", ""}, // free ports: two different ones
		{"127.0.0.1:7400", "0.0.0.0:8443", "0.0.0.0:9400", ""},
		{"", "", "unix:///var/run/kavach/diag.sock", "is TCP"},
		{"", "", "9400", "not host:port"},
		{"", "", "0.0.0.0:http", "not host:port"},
		{"", "", "0.0.0.0:70000", "not host:port"},
		{"", "", "127.0.0.1:7400", "server.address (--addr)"},
		{"", "", "0.0.0.0:7400", "server.address (--addr)"},
		{"", "", ":7400", "server.address (--addr)"},
		{"0.0.0.0:9400", "", "10.0.0.5:9400", "server.address (--addr)"},
		{"", "0.0.0.0:8443", "0.0.0.0:8443", "server.publicAddress (--public-addr)"},
	} {
		c := Default()
		if tt.addr != "" {
			c.Server.Address = tt.addr
		}
		c.Server.PublicAddress, c.Server.DiagnosticAddress = tt.public, tt.diagnostic
		err := c.Validate()
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("Validate(address %q, publicAddress %q, diagnosticAddress %q) = %v; want nil", tt.addr, tt.public, tt.diagnostic, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "server.diagnosticAddress (--diagnostic-addr)")):
			t.Errorf("Validate(address %q, publicAddress %q, diagnosticAddress %q) = %v; want an error naming server.diagnosticAddress and %q",
				tt.addr, tt.public, tt.diagnostic, err, tt.err)
		}
	}
}

// The key is read from the file by the name the README gives.
func TestDiagnosticAddressFromFile(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("server:\n  diagnosticAddress: 0.0.0.0:9400\n"))
	if err != nil || c.Server.DiagnosticAddress != "0.0.0.0:9400" {
		t.Errorf("Parse(server.diagnosticAddress) = %+v, %v; want 0.0.0.0:9400", c.Server, err)
	}
}
