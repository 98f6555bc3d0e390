package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/config"
)

// Durations on the command line read as the configuration's do
// (config.Rule): a number with a unit, Go's (90s, 1h30m, 500ms) plus d and
// w (7d, 2w), and errors that name the flag and what it takes.

// lifetime is what --expires-in takes: as agents.tokenExpiry, a duration
// with a unit from 1s to 100 years.
var lifetime = config.Rule{Name: "--expires-in", Min: time.Second, Max: config.MaxExpiry, Step: time.Second,
	Examples: "90m, 24h, 7d"}

// expiresIn reads --expires-in as an instant from now; ok is false when
// the flag was not given.
func expiresIn(c *cli.Context) (at api.Time, ok bool, err error) {
	d, err := lifetime.Parse(c.String("expires-in"))
	if err != nil {
		return api.Time{}, false, cli.Exit(err.Error(), 2)
	}
	if d == 0 {
		return api.Time{}, false, nil
	}
	return api.NewTime(time.Now().Add(d)), true, nil
}

// benchDuration reads one of kavach bench's durations (--duration,
// --warmup: 0 skips the warm-up).
func benchDuration(c *cli.Context, name string) (time.Duration, error) {
	r := config.Rule{Name: "--" + name, Min: 100 * time.Millisecond, Max: 24 * time.Hour, Examples: "500ms, 10s, 1m"}
	if name == "warmup" {
		r.Zero = "skips the warm-up"
	}
	d, err := r.Parse(c.String(name))
	if err != nil {
		return 0, cli.Exit(err.Error(), 2)
	}
	return d, nil
}
