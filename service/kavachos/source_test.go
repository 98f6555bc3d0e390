package kavachos

import (
	"testing"

	"github.com/go-sql-driver/mysql"
)

// TestImportMySQLSourceSafe: whatever the source URL asks, the importer
// lets no MySQL server read local files (LOCAL INFILE) nor run several
// statements in one query.
func TestImportMySQLSourceSafe(t *testing.T) {
	for _, raw := range []string{
		"mysql://u:p@db:3306/kos",
		"mysql://u:p@db:3306/kos?allowAllFiles=true&multiStatements=true",
		"mysql://u:p@db:3306/kos?allowAllFiles=1&multiStatements=1&interpolateParams=true",
		"mysql://u:p@db:3306/kos?AllowAllFiles=true&allowAllFiles=true",
	} {
		dsn, err := mysqlDSN(raw)
		if err != nil {
			t.Fatalf("mysqlDSN(%q): %v", raw, err)
		}
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatalf("ParseDSN(%q): %v", dsn, err)
		}
		if cfg.AllowAllFiles || cfg.MultiStatements {
			t.Errorf("mysqlDSN(%q) = %q: allowAllFiles %v, multiStatements %v; want both off", raw, dsn, cfg.AllowAllFiles, cfg.MultiStatements)
		}
		if cfg.DBName != "kos" || cfg.User != "u" || cfg.Passwd != "p" || !cfg.ParseTime {
			t.Errorf("mysqlDSN(%q) = %q: lost the database, user, password or parseTime", raw, dsn)
		}
	}
}
