// Command meshcast runs one node of a meshcast cluster: a WebSocket
// pub/sub server that finds its peers by gossip and forwards each publish
// only to the nodes that have subscribers for it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if code, ok := subcommand(args, os.Stdout, os.Stderr); ok { // commands.go
		return code
	}
	cfg, err := parseConfig(args, os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") { // one per problem (errors.Join)
			fmt.Fprintln(os.Stderr, "meshcast:", line)
		}
		return 2
	}
	log := cfg.logger(os.Stderr)
	// A node's heap is mostly per-connection state that lives as long as
	// the connection, and its fan-out path allocates about one frame per
	// publish, so collecting at 1.5x the live heap instead of Go's 2x costs
	// little CPU and keeps roughly a quarter off the RSS of an idle
	// connection (BENCHMARKS.md). An explicit GOGC still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	n, err := startNode(cfg, log, nodeOptions{})
	if err != nil {
		log.Error("cannot start", slog.Any("err", err))
		return 1
	}
	stopReload := n.reloadOnSIGHUP() // reload.go
	defer stopReload()
	select {
	case <-ctx.Done():
		log.Info("signal received, draining", slog.Int64("clients", n.hub.Stats().Sessions),
			slog.String("drain_timeout", cfg.drainTimeout.String()))
	case err := <-n.served:
		n.served <- err // shutdown reads it again
		log.Error("http server stopped", slog.Any("err", err))
	}
	stop() // a second signal now kills the process at once
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.drainTimeout)
	defer cancel()
	began := time.Now()
	if err := n.shutdown(drainCtx); err != nil {
		log.Error("shutdown incomplete", slog.Any("err", err))
		return 1
	}
	log.Info("stopped", slog.String("drained_in", time.Since(began).Round(time.Millisecond).String()))
	return 0
}
