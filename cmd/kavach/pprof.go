//go:build kavach_pprof

package main

// A measurement build (-tags kavach_pprof) serves net/http/pprof on
// $KAVACH_PPROF_ADDR (a loopback address, e.g. 127.0.0.1:6060), to profile
// the sidecar under load (docs/performance.md). Never deploy such a build.

import (
	"fmt"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // G108: a measurement build only, on the address asked for
	"os"
	"time"
)

func init() {
	addr := os.Getenv("KAVACH_PPROF_ADDR")
	if addr == "" {
		return
	}
	fmt.Fprintf(os.Stderr, "measurement build: pprof on http://%s/debug/pprof/\n", addr)
	go func() {
		srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
		if err := srv.ListenAndServe(); err != nil {
			fmt.Fprintf(os.Stderr, "pprof: %v\n", err)
		}
	}()
}
