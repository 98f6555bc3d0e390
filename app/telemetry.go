package app

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel"

	"github.com/kavach-dev/kavach/config"
	"github.com/kavach-dev/kavach/telemetry"
)

// startTracing builds the tracer provider the telemetry section and the
// OTEL_* environment ask for (off unless an endpoint is given) and, when
// on, the logger that stamps trace_id and span_id on log lines.
func startTracing(ctx context.Context, cfg config.Config, version string, log *slog.Logger) (*telemetry.Tracing, *slog.Logger, error) {
	t, err := telemetry.New(ctx, cfg.TelemetryOptions(version))
	if err != nil {
		return nil, log, configErr("telemetry: %v", err)
	}
	if !t.Enabled() {
		return t, log, nil
	}
	log = slog.New(telemetry.LogHandler(log.Handler()))
	// The SDK reports failed exports to its process-wide handler, which
	// would print plain text among the JSON lines: route them to the log.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("trace export failed", "error", err)
	}))
	log.Info("tracing", "endpoint", t.Endpoint(), "includeArguments", cfg.Telemetry.IncludeArguments)
	return t, log, nil
}

// stopTracing exports the spans still queued, within
// telemetry.ShutdownTimeout.
func (a *App) stopTracing() {
	ctx, cancel := context.WithTimeout(context.Background(), telemetry.ShutdownTimeout)
	defer cancel()
	if err := a.tracing.Shutdown(ctx); err != nil {
		a.log.Warn("trace export at shutdown failed", "error", err)
	}
}
