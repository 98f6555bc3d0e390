package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/auditchain"
	"github.com/kavach-dev/kavach/config"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/secret"
	"github.com/kavach-dev/kavach/store"
)

// Exit codes of kavach audit verify.
const (
	verifyIntact   = 0
	verifyTampered = 1
	verifyUsage    = 2
)

func auditVerifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check the audit trail for rows changed, deleted, inserted or reordered (exit 0 intact, 1 not)",
		Description: "Walks every hash chain of the database's audit trail and checks each against the signed checkpoints,\n" +
			"with the secret (KAVACH_SECRET, and KAVACH_SECRET_PREVIOUS after a rotation). With --file, checks a JSON\n" +
			"export offline instead: each row's hash and its link to the row before it.",
		Flags: []cli.Flag{configFlag, databaseFlag,
			&cli.StringFlag{Name: "file", Usage: "a JSON export (kavach audit export --format json) to check instead of the database"},
			&cli.BoolFlag{Name: "partial", Usage: "with --file: the export was filtered, so rows missing between its rows are expected"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			&cli.BoolFlag{Name: "no-secret", Usage: "accept signed checkpoints without checking their signatures (no secret at hand): structure only"},
			&cli.StringFlag{Name: "retired-secrets", Usage: "a file of secrets retired by earlier rotations, one per line, whose checkpoints are still in the trail"},
		},
		Action: auditVerify,
	}
}

func auditVerify(c *cli.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return cli.Exit(err.Error(), verifyUsage)
	}
	current, previous := cfg.Secrets()
	secrets := []secret.Secret{current, previous}
	if path := c.String("retired-secrets"); path != "" {
		retired, err := readSecrets(path)
		if err != nil {
			return cli.Exit(err.Error(), verifyUsage)
		}
		secrets = append(secrets, retired...)
	}
	keys, err := store.CheckpointKeys(secrets...)
	if err != nil {
		return cli.Exit(err.Error(), verifyUsage)
	}
	var report auditchain.Report
	var what string
	if path := c.String("file"); path != "" {
		rows, err := readExport(path)
		if err != nil {
			return cli.Exit(fmt.Sprintf("%s: %v", path, err), verifyUsage)
		}
		report, what = auditchain.VerifyRows(rows, nil, nil, c.Bool("partial")), path
	} else {
		if err := existingDatabase(cfg.Database.URL); err != nil {
			return cli.Exit(err.Error(), verifyUsage)
		}
		st, err := store.Open(c.Context, store.Options{URL: cfg.Database.URL, MaxConns: 2, Verify: true})
		if err != nil {
			return cli.Exit(err.Error(), verifyUsage)
		}
		defer st.Close()
		if report, err = st.VerifyAudit(c.Context, keys); err != nil {
			return err
		}
		what = store.Redact(cfg.Database.URL)
	}
	if c.Bool("json") {
		if err := printJSON(report); err != nil {
			return err
		}
	} else {
		printReport(os.Stdout, what, report)
	}
	if !report.OK() {
		return cli.Exit("", verifyTampered)
	}
	if report.Unchecked > 0 && !c.Bool("no-secret") {
		return cli.Exit("the checkpoints are signed, but no secret was given, so their signatures were not checked: "+
			"set KAVACH_SECRET (or pass --no-secret to accept a check of the structure only)", verifyTampered)
	}
	return nil
}

func printReport(w io.Writer, what string, r auditchain.Report) {
	fmt.Fprintf(w, "audit trail of %s: %d rows in %d chains, %d checkpoints (%d signatures checked)",
		what, r.Rows, r.Chains, r.Checkpoints, r.Signed)
	if r.Unsealed > 0 {
		fmt.Fprintf(w, ", %d rows since their chain's last checkpoint", r.Unsealed)
	}
	if r.Purged > 0 {
		fmt.Fprintf(w, ", %d chains cut by retention", r.Purged)
	}
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if r.OK() {
		fmt.Fprintln(w, "intact")
		return
	}
	fmt.Fprintf(w, "NOT INTACT: %d problems\n", r.Total)
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	if int64(len(r.Problems)) < r.Total {
		fmt.Fprintf(w, "  … and %d more\n", r.Total-int64(len(r.Problems)))
	}
}

// readExport reads a JSON export (an array of audit entries) one entry at
// a time.
func readExport(path string) ([]domain.AuditEntry, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the export the user named (--file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, errors.New("not a JSON export: it must be an array of audit entries (kavach audit export --format json)")
	}
	var rows []domain.AuditEntry
	for dec.More() {
		var e api.AuditEntry
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("entry %d: %w", len(rows)+1, err)
		}
		if e.Hash == "" && !strings.HasPrefix(e.ID, "aud_") {
			return nil, fmt.Errorf("entry %d is not an audit entry", len(rows)+1)
		}
		rows = append(rows, domain.AuditEntry{ID: e.ID, Kind: e.Kind, AgentID: e.AgentID, OwnerID: e.OwnerID,
			Action: e.Action, Resource: e.Resource, Arguments: e.Arguments, Result: e.Result, Code: e.Code,
			Reason: e.Reason, IP: e.IP, UserAgent: e.UserAgent, DurationUS: e.DurationUS, ApprovalID: e.ApprovalID,
			Timestamp: e.Timestamp.Time, Actor: domain.Actor(e.Actor), Changes: e.Changes,
			Chain: domain.ChainLink{ID: e.ChainID, Seq: e.ChainSeq, PrevHash: e.PrevHash, Hash: e.Hash}})
	}
	return rows, nil
}

// currentSecret is the secret that signs what a command writes.
func currentSecret(cfg config.Config) secret.Secret {
	current, _ := cfg.Secrets()
	return current
}

// readSecrets reads a file of secrets, one per line (blank lines and lines
// starting with # skipped). Errors name the line, never its content.
func readSecrets(path string) ([]secret.Secret, error) {
	raw, err := os.ReadFile(path) //nolint:gosec // G304: the file the user named (--retired-secrets)
	if err != nil {
		return nil, err
	}
	var out []secret.Secret
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := secret.New(line)
		if err != nil {
			return nil, fmt.Errorf("%s, line %d: %w", path, i+1, err)
		}
		out = append(out, s)
	}
	return out, nil
}
