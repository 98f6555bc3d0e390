package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"
)

// unixPrefix marks a Unix socket address, as OPA spells it.
const unixPrefix = "unix://"

// SocketPath returns the socket path of a unix:// address, or "".
func SocketPath(addr string) string {
	p, ok := strings.CutPrefix(addr, unixPrefix)
	if !ok {
		return ""
	}
	return p
}

// listen opens l's TCP address or Unix socket. A socket is created with
// mode 0660 (owner and group may connect; agents running as other users
// may not), in the group l.SocketGroup if set. A stale socket left by a
// crash is replaced; a live one (another sidecar) is an error.
//
// ctx's values reach the resolver and dialer, its cancellation does not:
// ListenAndServe treats a done ctx as a graceful shutdown, not a failure to
// listen, and a liveness probe cut short would take a live socket for a
// stale one and remove it.
func listen(ctx context.Context, l Listener) (net.Listener, error) {
	ctx = context.WithoutCancel(ctx)
	var lc net.ListenConfig
	path := SocketPath(l.Addr)
	if path == "" {
		ln, err := lc.Listen(ctx, "tcp", l.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", l.Addr, err)
		}
		return ln, nil
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on %s: %s exists and is not a socket", l.Addr, path)
		}
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "unix", path); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("listen on %s: another process is serving that socket", l.Addr)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	// Created under the process umask (022 by default: others cannot
	// connect, for that takes write permission), then narrowed to 0660.
	ln, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", l.Addr, err)
	}
	if err := os.Chmod(path, 0o660); err != nil { //nolint:gosec // G302: group members must connect to the socket (documented; see server.socketGroup)
		_ = ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	if l.SocketGroup != "" {
		gid, err := GroupID(l.SocketGroup)
		if err == nil {
			err = os.Chown(path, -1, gid)
		}
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("socket group %s: %w", l.SocketGroup, err)
		}
	}
	return ln, nil
}

// GroupID resolves a group name or number, as server.socketGroup takes it.
func GroupID(g string) (int, error) {
	if id, err := strconv.Atoi(g); err == nil {
		return id, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, err
	}
	id, err := strconv.Atoi(grp.Gid)
	if err != nil {
		return 0, errors.New("group " + g + " has a non-numeric ID")
	}
	return id, nil
}
