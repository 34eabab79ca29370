// Command natsnode is the NATS server of the module's nats-server dependency, built as one
// binary: deploy/local/cluster-test.sh runs three of them as a JetStream cluster on loopback
// from the configurations of deploy/nats/ (docs/reliability.md, "A JetStream cluster under
// failure"), and events/bench/compare.sh can run one alone.
//
//	natsnode -c FILE            run one node from a configuration file
//	natsnode -js -sd DIR -p N   any other nats-server option works as well
//
// It takes the options of nats-server itself (server.ConfigureOptions), handles its signals
// (SIGTERM, SIGINT, SIGUSR2 for lame duck mode) and exits when the server shuts down.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	fs := flag.NewFlagSet("natsnode", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: natsnode -c FILE | [nats-server options]")
	}
	opts, err := server.ConfigureOptions(fs, os.Args[1:], server.PrintServerAndExit, fs.Usage, server.PrintTLSHelpAndDie)
	if err != nil {
		server.PrintAndDie("natsnode: " + err.Error())
	}
	if opts.CheckConfig {
		fmt.Fprintf(os.Stderr, "natsnode: configuration file %s is valid\n", opts.ConfigFile)
		return
	}
	s, err := server.NewServer(opts)
	if err != nil {
		server.PrintAndDie("natsnode: " + err.Error())
	}
	s.ConfigureLogger()
	if err := server.Run(s); err != nil {
		server.PrintAndDie("natsnode: " + err.Error())
	}
	s.WaitForShutdown()
}
