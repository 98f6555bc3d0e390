package tests

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to tamper with PostgreSQL
	_ "modernc.org/sqlite"             // database/sql driver "sqlite", to tamper with the file

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/internal/mysqltest"
	"github.com/kavach-dev/kavach/internal/pgtest"
)

const chainSecret = "the e2e secret: at least 32 characters long"

// trafficOn makes decisions, allowed and denied, on the sidecars in turn,
// and returns the audit IDs of the denied ones.
func trafficOn(t *testing.T, sidecars ...*sidecar) []string {
	t.Helper()
	ctx := t.Context()
	admin := sidecars[0].adminClient()
	agent, err := admin.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "alice", Name: "bot", Type: "autonomous",
		Permissions: []api.Permission{{Resource: "mcp:github:*", Actions: []string{"read"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var denied []string
	for i := range 40 {
		s := sidecars[i%len(sidecars)]
		resource := fmt.Sprintf("mcp:github:repo-%d", i)
		if i%4 == 3 {
			resource = fmt.Sprintf("mcp:slack:channel-%d", i)
		}
		res, err := s.adminClient().Authorize(ctx, api.AuthorizeRequest{AgentID: agent.ID, Action: "read", Resource: resource,
			Arguments: json.RawMessage(`{"path": "<src>/a&b", "n": 1}`)}, "")
		if err != nil {
			t.Fatal(err)
		}
		if !res.Allowed {
			denied = append(denied, res.AuditID)
		}
	}
	return denied
}

// verifyCLI runs kavach audit verify and returns its output and exit code.
func verifyCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, errOut, code := cli(t, []string{"KAVACH_SECRET=" + chainSecret}, append([]string{"audit", "verify"}, args...)...)
	return out + errOut, code
}

func tamper(t *testing.T, driver, dsn, query string, args ...any) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.ExecContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s changed nothing", query)
	}
}

// The trail of a real SQLite file verifies, as does its JSON export; then
// a denial turned into an allow, a deleted row and an edited export are
// each found and named.
func TestAuditVerifyFindsTamperingOnSQLite(t *testing.T) {
	dir := t.TempDir()
	db, cfg := filepath.Join(dir, "kavach.db"), filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf("secret: %q\n", chainSecret))
	s := start(t, "--database", db, "--config", cfg)
	denied := trafficOn(t, s)
	export := filepath.Join(dir, "export.json")
	if _, errOut, code := cli(t, nil, "audit", "export", "--server", s.URL, "--format", "json", "-o", export); code != 0 {
		t.Fatalf("export exited %d: %s", code, errOut)
	}
	s.stop(t)

	if out, code := verifyCLI(t, "--database", db); code != 0 || !strings.Contains(out, "intact") || !strings.Contains(out, "signatures checked") {
		t.Fatalf("verify of an untouched trail exited %d:\n%s", code, out)
	}
	if out, code := verifyCLI(t, "--file", export); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("verify of the untouched export exited %d:\n%s", code, out)
	}

	// An edited export.
	raw, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(raw, &rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r["id"] == denied[0] {
			r["result"] = "allowed"
		}
	}
	edited, _ := json.MarshalIndent(rows, "", "  ")
	writeFile(t, export, string(edited))
	if out, code := verifyCLI(t, "--file", export); code != 1 || !strings.Contains(out, denied[0]) || !strings.Contains(out, "changed") {
		t.Fatalf("verify of an edited export exited %d; want 1 naming %s:\n%s", code, denied[0], out)
	}

	tamper(t, "sqlite", db, `UPDATE audit_log SET result = 'allowed', code = 'allowed' WHERE id = $1`, denied[1])
	out, code := verifyCLI(t, "--database", db)
	if code != 1 || !strings.Contains(out, denied[1]) || !strings.Contains(out, "changed") {
		t.Fatalf("verify after a denial was turned into an allow exited %d; want 1 naming %s:\n%s", code, denied[1], out)
	}
	tamper(t, "sqlite", db, `DELETE FROM audit_log WHERE id = $1`, denied[2])
	out, code = verifyCLI(t, "--database", db, "--json")
	var report struct {
		Problems []struct{ Kind string }
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil || code != 1 {
		t.Fatalf("verify --json exited %d: %v\n%s", code, err, out)
	}
	kinds := map[string]bool{}
	for _, p := range report.Problems {
		kinds[p.Kind] = true
	}
	if !kinds["changed"] || !kinds["deleted"] {
		t.Fatalf("problems %v; want changed and deleted", report.Problems)
	}
	if _, code := verifyCLI(t, "--database", filepath.Join(dir, "nope", "x.db")); code != 2 {
		t.Errorf("verify of a database that cannot be opened exited %d; want 2", code)
	}
}

// Two replicas write to one PostgreSQL (or MySQL) database, each to chains
// of its own; after both stop the trail verifies, and tampering is found.
func TestAuditVerifyWithTwoReplicasOnPostgres(t *testing.T) {
	db := pgtest.URL(t)
	testAuditVerifyWithTwoReplicas(t, db, func(id string) { tamper(t, "pgx", db, `DELETE FROM audit_log WHERE id = $1`, id) })
}

func TestAuditVerifyWithTwoReplicasOnMySQL(t *testing.T) {
	db := mysqltest.URL(t)
	testAuditVerifyWithTwoReplicas(t, db, func(id string) {
		tamper(t, "mysql", mysqltest.DSN(t, db), `DELETE FROM audit_log WHERE id = ?`, id)
	})
}

// testAuditVerifyWithTwoReplicas runs two replicas on db; deleteRow
// deletes an audit row behind their back.
func testAuditVerifyWithTwoReplicas(t *testing.T, db string, deleteRow func(id string)) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf("secret: %q\n", chainSecret))
	a := start(t, "--database", db, "--config", cfg)
	b := start(t, "--database", db, "--config", cfg)
	denied := trafficOn(t, a, b)
	a.stop(t)
	b.stop(t)

	out, code := verifyCLI(t, "--database", db)
	if code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("verify of two replicas' trail exited %d:\n%s", code, out)
	}
	deleteRow(denied[0])
	out, code = verifyCLI(t, "--database", db)
	if code != 1 || !strings.Contains(out, "deleted") {
		t.Fatalf("verify after a deletion exited %d; want 1:\n%s", code, out)
	}
	// Without the secret, the structure is still checked, and the output
	// says the signatures were not.
	outNoSecret, _, code := cli(t, nil, "audit", "verify", "--database", db)
	if code != 1 || !strings.Contains(outNoSecret, "not checked") {
		t.Fatalf("verify without the secret exited %d:\n%s", code, outNoSecret)
	}
}

// After two rotations of the secret, the trail holds checkpoints signed
// with three secrets: verify needs them all, and says which it lacks.
func TestAuditVerifyAcrossSecretRotations(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "kavach.db")
	secrets := []string{chainSecret + " one", chainSecret + " two", chainSecret + " three"}
	for i, sec := range secrets {
		cfg := filepath.Join(dir, fmt.Sprintf("c%d.yaml", i))
		body := fmt.Sprintf("secret: %q\n", sec)
		if i > 0 {
			body += fmt.Sprintf("previousSecret: %q\n", secrets[i-1])
		}
		writeFile(t, cfg, body)
		s := start(t, "--database", db, "--config", cfg)
		trafficOn(t, s)
		s.stop(t)
	}
	env := []string{"KAVACH_SECRET=" + secrets[2], "KAVACH_SECRET_PREVIOUS=" + secrets[1]}
	out, errOut, code := cli(t, env, "audit", "verify", "--database", db)
	if code != 1 || !strings.Contains(out, "not the current or previous secret's") {
		t.Fatalf("verify without the oldest secret exited %d; want 1 naming the unknown key:\n%s%s", code, out, errOut)
	}
	retired := filepath.Join(dir, "retired")
	writeFile(t, retired, "# retired 2026\n"+secrets[0]+"\n")
	out, errOut, code = cli(t, env, "audit", "verify", "--database", db, "--retired-secrets", retired)
	if code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("verify with every secret exited %d:\n%s%s", code, out, errOut)
	}
	writeFile(t, retired, "short\n")
	if _, errOut, code := cli(t, env, "audit", "verify", "--database", db, "--retired-secrets", retired); code != 2 || strings.Contains(errOut, "short") {
		t.Fatalf("a bad retired-secrets file: exit %d, %s", code, errOut)
	}
}
