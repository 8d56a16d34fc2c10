package store

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Main runs the kvstore command with args (without the program name):
// one node, until SIGINT or SIGTERM, which make it leave gracefully. It
// prints cluster events on stdout (text, or JSON lines with -events json)
// and logs on stderr, and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvstore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	cfg.RegisterFlags(fs)
	events := fs.String("events", "text", "how cluster events are printed on stdout: text or json")
	level := zap.LevelFlag("log", zap.InfoLevel, "log level on stderr: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "kvstore runs one node of a replicated key-value store on ClusterKit.\n\nUsage: kvstore [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *events != "text" && *events != "json" {
		fmt.Fprintf(stderr, "kvstore: -events must be text or json, got %q\n", *events)
		return 2
	}
	cfg.Logger = zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.Lock(zapcore.AddSync(stderr)), *level))
	defer cfg.Logger.Sync()
	var mu sync.Mutex
	if *events == "json" {
		enc := json.NewEncoder(stdout)
		cfg.Events = func(e Event) {
			mu.Lock()
			defer mu.Unlock()
			enc.Encode(e)
		}
	} else {
		out := log.New(stdout, "", log.Ltime|log.Lmicroseconds)
		cfg.Events = func(e Event) {
			if e.Kind != EventPartitionGain {
				out.Print(e)
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := StartNode(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "kvstore: %v\n", err)
		return 1
	}
	<-ctx.Done()
	cfg.Events(Event{At: time.Now(), Node: cfg.ID, Kind: EventStopping})
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Stop(sctx); err != nil {
		fmt.Fprintf(stderr, "kvstore: stop: %v\n", err)
		return 1
	}
	return 0
}
