package policy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

const ext = "package kavach.ext\n\ndeny contains {\"code\": \"c\", \"reason\": \"r\"} if input.action == \"drop\"\n"

func TestReadExtensionsFromADirectoryAndABundle(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "team"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"a.rego": ext, "team/b.rego": ext, "a_test.rego": "package x", "notes.md": "# hi"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mods, err := ReadExtensions(dir)
	if err != nil || len(mods) != 2 || mods["a.rego"] != ext || mods["team/b.rego"] != ext {
		t.Fatalf("ReadExtensions(dir) = %v, %v; want a.rego and team/b.rego only", mods, err)
	}

	path := filepath.Join(t.TempDir(), "ext.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	b := opabundle.Bundle{Data: map[string]any{}, Modules: []opabundle.ModuleFile{{URL: "freeze.rego", Path: "freeze.rego", Raw: []byte(ext)},
		{URL: "freeze_test.rego", Path: "freeze_test.rego", Raw: []byte("package kavach.ext_test\n\ntest_x if true\n")}}}
	b.Manifest.SetRegoVersion(ast.RegoV1)
	if err := opabundle.NewWriter(f).Write(b); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	mods, err = ReadExtensions(path)
	if err != nil || len(mods) != 1 || mods["freeze.rego"] != ext {
		t.Fatalf("ReadExtensions(bundle) = %v, %v; want freeze.rego only (tests skipped)", mods, err)
	}
	if _, err := ReadExtensions(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing path was accepted")
	}
}
