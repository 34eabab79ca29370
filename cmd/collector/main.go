// Command collector runs one replica of the Greenhouse license and usage collector: the HTTP
// API of the connect flow and the dashboard, the per-tenant scheduler, and the sync pipeline
// into NATS JetStream and ClickHouse. Configuration comes from flags and COLLECTOR_*
// environment variables (see the README); it is validated at once and printed with secrets
// masked.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/seatwatch/greenhouse-collector/collector"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "collector:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := collector.LoadConfig(os.Args[1:], os.Getenv)
	if err != nil {
		return err
	}
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("log-level: %w", err)
	}
	log := zerolog.New(os.Stderr).Level(level).With().Timestamp().Str("service", "collector").Str("replica", cfg.ReplicaID).Logger()
	log.Info().Interface("config", cfg.Masked()).Msg("starting")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app, err := collector.Start(ctx, cfg, log, collector.Options{})
	if err != nil {
		return err
	}
	defer app.Close()
	// SIGHUP re-reads the API tokens file (docs/api.md, "Tokens and scopes").
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := app.Service.ReloadTokens(); err != nil {
				log.Error().Err(err).Msg("api tokens not reloaded; the previous tokens stay in force")
				continue
			}
			log.Info().Msg("api tokens reloaded")
		}
	}()
	if err := app.Run(ctx); err != nil {
		return err
	}
	log.Info().Msg("stopped")
	return nil
}
