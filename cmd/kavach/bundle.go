package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/bundle"
	"github.com/kavach-dev/kavach/config"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/store"
)

func bundleCommand() *cli.Command {
	signFlags := []cli.Flag{
		&cli.StringFlag{Name: "signing-key", Usage: "sign with this key: a PEM RSA private key (RS256) or a secret (HS256), or a file holding it", EnvVars: []string{"KAVACH_BUNDLE_SIGNING_KEY"}},
		&cli.StringFlag{Name: "signing-alg", Usage: "RS256 or HS256", Value: "RS256"},
		&cli.StringFlag{Name: "key-id", Usage: "key ID in the signature (OPA's keyid)", Value: "kavach"},
	}
	return &cli.Command{
		Name:  "bundle",
		Usage: "build and verify OPA bundles of Kavach's policies and data",
		Subcommands: []*cli.Command{
			{
				Name:  "build",
				Usage: "write a bundle (policies, data snapshot, manifest) from the database or a running sidecar",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: "kavach.tar.gz"},
					configFlag, databaseFlag, policyDirFlag,
					&cli.StringFlag{Name: "server", Usage: "fetch from a running sidecar instead of reading the database"}, apiKeyFlag,
				}, signFlags...),
				Action: buildBundle,
			},
			{
				Name:      "verify",
				Usage:     "check a bundle's signature; any file changed after signing fails",
				ArgsUsage: "BUNDLE",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "verification-key", Usage: "PEM public key (RS256) or secret (HS256), or a file holding it", Required: true, EnvVars: []string{"KAVACH_BUNDLE_VERIFICATION_KEY"}},
					&cli.StringFlag{Name: "signing-alg", Value: "RS256"},
					&cli.StringFlag{Name: "key-id", Value: "kavach"},
				},
				Action: func(c *cli.Context) error {
					path, err := oneArg(c, "BUNDLE")
					if err != nil {
						return err
					}
					f, err := os.Open(path) //nolint:gosec // G304: the bundle file the user named (BUNDLE)
					if err != nil {
						return err
					}
					defer f.Close()
					m, err := bundle.Verify(f, bundle.VerifyOptions{Key: c.String("verification-key"), Alg: c.String("signing-alg"), KeyID: c.String("key-id")})
					if err != nil {
						return cli.Exit(err.Error(), 1)
					}
					fmt.Printf("%s: signature valid, revision %s\n", path, m.Revision)
					return nil
				},
			},
		},
	}
}

func buildBundle(c *cli.Context) error {
	var raw bytes.Buffer
	var info bundle.Info
	key := c.String("signing-key")
	if srv := c.String("server"); srv != "" {
		if err := apiClientFor(c, srv).Bundle(c.Context, &raw); err != nil {
			return err
		}
		got, err := bundle.Inspect(bytes.NewReader(raw.Bytes()))
		if err != nil {
			return err
		}
		info = got
		if key != "" {
			var signed bytes.Buffer
			if err := bundle.Sign(&raw, &signed, key, c.String("signing-alg"), c.String("key-id")); err != nil {
				return err
			}
			raw, info.Signed = signed, true
		}
	} else {
		cfg, err := loadConfig(c)
		if err != nil {
			return cli.Exit(err.Error(), 2)
		}
		if err := existingDatabase(cfg.Database.URL); err != nil {
			return cli.Exit(err.Error(), 2)
		}
		st, err := store.Open(c.Context, store.Options{URL: cfg.Database.URL, MaxConns: 2, Secret: currentSecret(cfg), Timeout: cfg.DatabaseTimeout(), SkipMigrations: cfg.Database.SkipMigrations})
		if err != nil {
			return err
		}
		defer st.Close()
		exts, err := readExtensions(cfg)
		if err != nil {
			return err
		}
		seq, err := st.LatestChange(c.Context)
		if err != nil {
			return err
		}
		info, err = bundle.Build(c.Context, st, bundle.Options{Revision: seq, Extensions: exts,
			SigningKey: key, SigningAlg: c.String("signing-alg"), KeyID: c.String("key-id")}, &raw)
		if err != nil {
			return err
		}
	}
	if err := os.WriteFile(c.String("out"), raw.Bytes(), 0o600); err != nil {
		return err
	}
	fmt.Printf("wrote %s (revision %s, %d agents, %d delegations, signed %v)\n", c.String("out"), info.Revision, info.Agents, info.Delegations, info.Signed)
	return nil
}

// readExtensions reads the configured policy extensions, if any; a bad one
// is a configuration error (exit 2).
func readExtensions(cfg config.Config) (map[string]string, error) {
	if cfg.Policies.Extensions == "" {
		return nil, nil
	}
	exts, err := service.ReadExtensions(cfg.Policies.Extensions)
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	return exts, nil
}
