// Command server runs the embedded NATS server of package events (JetStream, file storage)
// for benchmarks: it prints the client URL on stdout and runs until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/seatwatch/greenhouse-collector/events"
)

func main() {
	dir := flag.String("dir", "", "JetStream store directory (required)")
	port := flag.Int("port", -1, "client port; -1 = random")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "server: -dir is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := events.StartEmbedded(events.EmbeddedConfig{Listen: true, Dir: *dir, Port: *port})
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
	fmt.Println(srv.ClientURL())
	<-ctx.Done()
	srv.Shutdown()
	srv.WaitForShutdown()
}
