// Command devserver runs the whole backend on this machine (`make run`):
// every function's routes through the same handlers, a Klavi simulator, an
// in-memory link store whose change feed stands in for the DynamoDB stream,
// reports on local disk, and a demo page. Environment variables switch any
// part to the real thing; see internal/devserver. main only wires.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/openfinance-br/klavi-link-lambda/internal/devserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devserver:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", envOr("ADDR", "127.0.0.1:8080"), "address to listen on (env ADDR)")
	seed := flag.Int64("seed", 0, "seed for the simulator's ids and report data; 0 is random (env SEED)")
	flag.Parse()
	if v := os.Getenv("SEED"); v != "" && !isFlagSet("seed") {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("SEED must be an integer")
		}
		*seed = n
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := devserver.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	cfg.Seed = *seed
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if cfg.NeedsAWS() {
		awsCfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("load AWS configuration: %w", err)
		}
		cfg.AWS = &awsCfg
	}

	srv, err := devserver.New(cfg)
	if err != nil {
		return err
	}
	if _, err := srv.Start(ctx, *addr); err != nil {
		return err
	}
	srv.Describe(os.Stdout)
	<-ctx.Done()
	stop()
	fmt.Fprintln(os.Stderr, "devserver: stopping")
	return srv.Close()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func isFlagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
