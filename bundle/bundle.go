// Package bundle packs Kavach's policies (core and extensions) and a
// snapshot of its data into a standard OPA bundle, optionally signed in
// OPA's .signatures.json format, and verifies such bundles: the same
// decisions can then be reproduced by stock OPA.
package bundle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/policies"
)

// Root is the bundle's only root: data.kavach and the kavach.* packages.
const Root = "kavach"

// Options configures Build.
type Options struct {
	// Revision is the manifest revision: the change-feed sequence the
	// snapshot is at least as new as.
	Revision int64
	// Extensions are user policies (file name → source), package kavach.ext.
	Extensions map[string]string
	// SigningKey, if set, signs the bundle: a PEM private key (RS256), a
	// secret (HS256), or a file holding either.
	SigningKey string
	// SigningAlg is HS256 or RS256 (default RS256).
	SigningAlg string
	// KeyID names the key in the signature (default "kavach").
	KeyID string
	// Now stamps the manifest metadata; zero means time.Now.
	Now time.Time
}

// Info summarises a built bundle.
type Info struct {
	Revision    string
	Agents      int
	Delegations int
	Approvals   int
	Modules     int
	Signed      bool
}

// Build writes a gzipped tar bundle to w.
func Build(ctx context.Context, src engine.Source, opts Options, w io.Writer) (Info, error) {
	docs, counts, err := engine.Documents(ctx, src)
	if err != nil {
		return Info{}, err
	}
	data, err := ast.JSON(docs)
	if err != nil {
		return Info{}, fmt.Errorf("bundle data: %w", err)
	}
	mods, err := modules(opts.Extensions)
	if err != nil {
		return Info{}, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	b := opabundle.Bundle{
		Data:    map[string]any{Root: data},
		Modules: mods,
		Manifest: opabundle.Manifest{
			Revision: strconv.FormatInt(opts.Revision, 10),
			Roots:    &[]string{Root},
			Metadata: map[string]any{"kavach": map[string]any{
				"createdAt": api.FormatTime(now), "agents": counts.Agents,
				"delegations": counts.Delegations, "approvals": counts.Approvals,
			}},
		},
	}
	b.Manifest.SetRegoVersion(ast.RegoV1)
	info := Info{Revision: b.Manifest.Revision, Agents: counts.Agents, Delegations: counts.Delegations,
		Approvals: counts.Approvals, Modules: len(mods)}
	if opts.SigningKey != "" {
		alg := opts.SigningAlg
		if alg == "" {
			alg = "RS256"
		}
		if alg != "RS256" && alg != "HS256" {
			return Info{}, fmt.Errorf("signing algorithm %q: use RS256 or HS256", alg)
		}
		keyID := opts.KeyID
		if keyID == "" {
			keyID = "kavach"
		}
		if err := b.GenerateSignature(opabundle.NewSigningConfig(opts.SigningKey, alg, ""), keyID, false); err != nil {
			return Info{}, fmt.Errorf("sign bundle: %w", err)
		}
		info.Signed = true
	}
	// Policies are already `opa fmt` clean, and formatting after signing
	// would change what was signed.
	if err := opabundle.NewWriter(w).DisableFormat(true).Write(b); err != nil {
		return Info{}, fmt.Errorf("write bundle: %w", err)
	}
	return info, nil
}

// modules lays the core policies out under policies/ and extensions under
// extensions/, sorted, so the same input gives the same bundle.
func modules(extensions map[string]string) ([]opabundle.ModuleFile, error) {
	core, err := policies.Modules()
	if err != nil {
		return nil, err
	}
	var out []opabundle.ModuleFile
	for name, src := range core {
		out = append(out, opabundle.ModuleFile{URL: name, Path: name, Raw: []byte(src)})
	}
	for name, src := range extensions {
		path := "extensions/" + strings.TrimLeft(name, "/")
		out = append(out, opabundle.ModuleFile{URL: path, Path: path, Raw: []byte(src)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URL < out[j].URL })
	return out, nil
}

// VerifyOptions says how to check a bundle's signature.
type VerifyOptions struct {
	// Key is the public key (RS256, PEM or a file) or secret (HS256).
	Key   string
	Alg   string
	KeyID string
}

// Verify reads a bundle and checks its signature against the key: a
// missing signature, a signature by another key or any file changed after
// signing is an error. It returns the bundle's manifest.
func Verify(r io.Reader, opts VerifyOptions) (opabundle.Manifest, error) {
	alg := opts.Alg
	if alg == "" {
		alg = "RS256"
	}
	keyID := opts.KeyID
	if keyID == "" {
		keyID = "kavach"
	}
	key := opts.Key
	if !strings.HasPrefix(key, "-----BEGIN") {
		// A file path, as OPA's own flags accept.
		if b, err := os.ReadFile(key); err == nil { //nolint:gosec // G304: the verification key file the operator named (--verification-key)
			key = string(b)
		}
	}
	vc := opabundle.NewVerificationConfig(map[string]*opabundle.KeyConfig{keyID: {Key: key, Algorithm: alg}}, keyID, "", nil)
	b, err := opabundle.NewReader(r).WithBundleVerificationConfig(vc).WithRegoVersion(ast.RegoV1).Read()
	if err != nil {
		return opabundle.Manifest{}, fmt.Errorf("verify bundle: %w", err)
	}
	return b.Manifest, nil
}

// Read loads a bundle without checking signatures (extensions given as a
// bundle file), returning its modules as file name → source.
func Read(r io.Reader) (map[string]string, error) {
	b, err := opabundle.NewReader(r).WithSkipBundleVerification(true).WithRegoVersion(ast.RegoV1).Read()
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	mods := map[string]string{}
	for _, m := range b.Modules {
		name := strings.TrimPrefix(m.Path, "/")
		if strings.HasSuffix(name, "_test.rego") {
			continue // tests run under opa test, as in a directory
		}
		mods[name] = string(bytes.Clone(m.Raw))
	}
	return mods, nil
}

// Sign re-signs an existing bundle (one fetched from a running sidecar,
// which never holds signing keys) and writes it to w.
func Sign(r io.Reader, w io.Writer, key, alg, keyID string) error {
	b, err := opabundle.NewReader(r).WithSkipBundleVerification(true).WithRegoVersion(ast.RegoV1).Read()
	if err != nil {
		return fmt.Errorf("read bundle: %w", err)
	}
	if alg == "" {
		alg = "RS256"
	}
	if alg != "RS256" && alg != "HS256" {
		return fmt.Errorf("signing algorithm %q: use RS256 or HS256", alg)
	}
	if keyID == "" {
		keyID = "kavach"
	}
	if err := b.GenerateSignature(opabundle.NewSigningConfig(key, alg, ""), keyID, false); err != nil {
		return fmt.Errorf("sign bundle: %w", err)
	}
	if err := opabundle.NewWriter(w).DisableFormat(true).Write(b); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}

// Inspect summarises a bundle without checking its signature: its
// revision, the agents, delegations and approvals its data holds, its
// modules, and whether it is signed.
func Inspect(r io.Reader) (Info, error) {
	b, err := opabundle.NewReader(r).WithSkipBundleVerification(true).WithRegoVersion(ast.RegoV1).Read()
	if err != nil {
		return Info{}, fmt.Errorf("read bundle: %w", err)
	}
	info := Info{Revision: b.Manifest.Revision, Modules: len(b.Modules), Signed: len(b.Signatures.Signatures) > 0}
	if kv, ok := b.Data["kavach"].(map[string]any); ok {
		count := func(key string) int {
			m, _ := kv[key].(map[string]any)
			return len(m)
		}
		info.Agents, info.Delegations, info.Approvals = count("agents"), count("delegations"), count("approvals")
	}
	return info, nil
}
