// Package policies embeds Kavach's Rego policies, so the binary carries the
// exact files that `opa test policies/` checks.
package policies

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

//go:embed */*.rego
var files embed.FS

// Entrypoints the sidecar evaluates.
const (
	DecisionQuery             = "data.kavach.authz.decision"
	EffectivePermissionsQuery = "data.kavach.authz.effective_permissions"
	DelegationQuery           = "data.kavach.delegation.check"
	ExplanationQuery          = "data.kavach.authz.explanation"
	// APIDecisionQuery decides who may call a route of Kavach's own API.
	APIDecisionQuery = "data.kavach.api.decision"
	// APIRolesQuery lists the roles an API key may hold.
	APIRolesQuery = "data.kavach.api.roles"
	// APIRoutesQuery lists the routes the API policy decides.
	APIRoutesQuery = "data.kavach.api.routes"
)

// apiDir holds the policy of Kavach's own API, which is not part of agent
// decisions (nor of the bundles built for them).
const apiDir = "api/"

// Modules returns the agent-decision policy modules (tests excluded), keyed
// by file name.
func Modules() (map[string]string, error) {
	return modules(func(path string) bool { return !strings.HasPrefix(path, apiDir) })
}

// APIModules returns the modules of the API access policy (policies/api).
func APIModules() (map[string]string, error) {
	return modules(func(path string) bool { return strings.HasPrefix(path, apiDir) })
}

func modules(keep func(path string) bool) (map[string]string, error) {
	mods := map[string]string{}
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".rego") || strings.HasSuffix(path, "_test.rego") || !keep(path) {
			return nil
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		mods["policies/"+path] = string(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read embedded policies: %w", err)
	}
	return mods, nil
}
