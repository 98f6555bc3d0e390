package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/service"
)

// bootstrapAdminKey makes a fresh sidecar closed yet usable: when the
// database holds no API key, it creates an admin key and writes it to a
// 0600 file that the CLI reads by default (as Vault's dev server does with
// ~/.vault-token). The key is shown on stdout only when stdout is a
// terminal: a container's stdout is its log, and keys are never logged.
// With neither a terminal nor a writable file, the sidecar refuses to start
// rather than make a key nobody can read.
func (a *App) bootstrapAdminKey(ctx context.Context) error {
	svc, file, log, out := a.svc, a.cfg.Server.AdminKeyFile, a.log, a.opts.Stdout
	if keys, err := svc.ListKeys(ctx, service.PageQuery{Limit: "1"}); err != nil {
		return fmt.Errorf("bootstrap admin key: %w", err)
	} else if len(keys.Keys) > 0 {
		return nil
	}
	if file == "" {
		file = client.AdminKeyFile()
	}
	terminal := a.opts.Terminal
	if fi, err := os.Lstat(file); err == nil && !fi.Mode().IsRegular() {
		return configErr("the admin key file %q is not a file (%s): give KAVACH_ADMIN_KEY_FILE (--admin-key-file) a file path", file, fi.Mode().Type())
	}
	if werr := canWrite(file); werr != nil && !terminal {
		return configErr("no admin credential: set KAVACH_ADMIN_KEY (32+ characters), or let the first start write "+
			"its admin key to KAVACH_ADMIN_KEY_FILE (%q: %v)", file, werr)
	}
	secret, k, err := svc.BootstrapAdminKey(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap admin key: %w", err)
	}
	if secret == "" {
		return nil // another replica made it meanwhile
	}
	written := ""
	if kept, err := writeSecretFile(file, secret); err != nil {
		log.Error("bootstrap admin key not written to its file", "file", file, "error", err)
	} else {
		written = file
		if kept != "" {
			log.Warn("an admin key file was already there (another database's key): kept it", "file", file, "kept", kept)
			fmt.Fprintf(out, "The admin key file %s held another database's key: it is kept as %s.\n", file, kept)
		}
	}
	log.Info("bootstrap admin key created", "key", k.ID, "file", written)
	switch {
	case terminal:
		fmt.Fprintf(out, "Kavach created an admin API key. It is shown once and stored only as a hash:\n\n    %s\n\n", secret)
		if written != "" {
			fmt.Fprintf(out, "It is also in %s (mode 0600), where the kavach CLI finds it.\n", written)
		}
	case written != "":
		fmt.Fprintf(out, "Kavach created an admin API key in %s (mode 0600), where the kavach CLI finds it.\n"+
			"It is not printed here: this output is not a terminal, and may be kept in logs.\n", written)
	default:
		fmt.Fprintf(out, "Kavach created an admin API key, but could not write it to %s: set KAVACH_ADMIN_KEY and restart to get in.\n", file)
	}
	fmt.Fprintf(out, "Create keys with less power with: kavach keys create --name my-app --role decider\n")
	return nil
}

// canWrite reports whether a secret file can be written at path.
func canWrite(path string) error {
	if path == "" {
		return errors.New("no home directory")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".kavach-probe-*")
	if err != nil {
		return err
	}
	_ = f.Close()
	return os.Remove(f.Name())
}

// writeSecretFile writes secret to a new file only its owner can read. A
// file already there (another database's key) is kept beside it as
// <path>.old-<unix time>, never lost, and kept names it. Anything at path
// that is not a regular file (a directory, say) is left alone: an error.
func writeSecretFile(path, secret string) (kept string, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if fi, err := os.Lstat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("%s is not a file (%s)", path, fi.Mode().Type())
		}
		kept = fmt.Sprintf("%s.old-%d", path, time.Now().Unix())
		if err := os.Rename(path, kept); err != nil {
			return "", err
		}
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // G304: beside the admin key file the operator configured
	if err != nil {
		return kept, err
	}
	_, err = f.WriteString(secret + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return kept, err
}
