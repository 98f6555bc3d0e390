package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

var update = flag.Bool("update", false, "rewrite docs/cli.md from the commands")

const cliDoc = "../../docs/cli.md"

// TestCLIReferenceIsCurrent: docs/cli.md is generated from the commands
// themselves (their usage, arguments, flags, environment variables and
// defaults), so it cannot drift from the binary. After changing a command:
// go test ./cmd/kavach -run CLIReference -update
func TestCLIReferenceIsCurrent(t *testing.T) {
	got := cliReference(newApp())
	if *update {
		if err := os.WriteFile(cliDoc, []byte(got), 0o644); err != nil { //nolint:gosec // G306: documentation, world-readable like the rest of the tree
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(cliDoc)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("docs/cli.md is not what the commands say: run go test ./cmd/kavach -run CLIReference -update")
	}
}

// cliReference renders every command and its flags as Markdown.
func cliReference(app *cli.App) string {
	var b strings.Builder
	b.WriteString("# CLI reference\n\n")
	b.WriteString("[← README](../README.md) · generated from the commands by `go test ./cmd/kavach -run CLIReference -update`; do not edit.\n\n")
	b.WriteString("Every command but `serve`, `migrate`, `import`, `bundle build --database` and `audit verify` talks to a running\n")
	b.WriteString("sidecar: `--server` (or `KAVACH_SERVER`) names it, and the credential is `--api-key`, else\n")
	b.WriteString("`KAVACH_API_KEY`, else `KAVACH_ADMIN_KEY`, else the key file the sidecar's first start wrote. Flags\n")
	b.WriteString("may come before or after the arguments; after `--`, everything is an argument. Durations take\n")
	b.WriteString("units (`90s`, `30m`, `24h`, `7d`).\n\n")
	var walk func(path string, cmds []*cli.Command)
	var toc []string
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden || c.Name == "help" {
				continue
			}
			name := path + " " + c.Name
			if c.Action != nil || len(c.Subcommands) == 0 {
				toc = append(toc, name)
			}
			walk(name, c.Subcommands)
		}
	}
	walk(app.Name, app.Commands)
	for _, name := range toc {
		fmt.Fprintf(&b, "- [`%s`](#%s)\n", name, strings.ReplaceAll(name, " ", "-"))
	}
	b.WriteString("\n")
	for _, name := range toc {
		c := find(app.Commands, strings.Fields(name)[1:])
		usageText := strings.TrimSuffix(c.Usage, ".")
		if usageText != "" {
			usageText = strings.ToUpper(usageText[:1]) + usageText[1:] + "."
		}
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", name, usageText)
		usage := name
		if len(c.VisibleFlags()) > 1 {
			usage += " [flags]"
		}
		if c.ArgsUsage != "" {
			usage += " " + c.ArgsUsage
		}
		fmt.Fprintf(&b, "```\n%s\n```\n\n", usage)
		if c.Description != "" {
			fmt.Fprintf(&b, "%s\n\n", strings.TrimSpace(c.Description))
		}
		var rows []string
		for _, f := range c.VisibleFlags() {
			df, ok := f.(cli.DocGenerationFlag)
			if !ok || slices.Contains(f.Names(), "help") {
				continue
			}
			var names []string
			for _, n := range f.Names() {
				if len(n) == 1 {
					names = append(names, "`-"+n+"`")
				} else {
					names = append(names, "`--"+n+"`")
				}
			}
			var env []string
			for _, e := range df.GetEnvVars() {
				env = append(env, "`"+e+"`")
			}
			def := df.GetDefaultText()
			if def == "" && df.TakesValue() {
				def = df.GetValue()
			}
			if def == "" || def == `""` || def == "0s" || def == "0" || def == "false" {
				def = ""
			} else {
				def = "`" + strings.Trim(def, `"`) + "`"
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", strings.Join(names, ", "), strings.Join(env, ", "), def, cell(df.GetUsage())))
		}
		if len(rows) > 0 {
			b.WriteString("| flag | env | default | |\n|---|---|---|---|\n")
			b.WriteString(strings.Join(rows, "\n"))
			b.WriteString("\n\n")
		}
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func find(cmds []*cli.Command, path []string) *cli.Command {
	for _, c := range cmds {
		if c.Name == path[0] {
			if len(path) == 1 {
				return c
			}
			return find(c.Subcommands, path[1:])
		}
	}
	return nil
}

// cell makes text safe in a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}
