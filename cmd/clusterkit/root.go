package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the operation failed
	exitUsage  = 2 // the command line is wrong
)

// Environment variables that give the global flags' defaults.
const (
	envNode  = "CLUSTERKIT_NODE"
	envToken = "CLUSTERKIT_TOKEN"
)

// defaultTimeout bounds one HTTP request; longer than the nodes' own 15 s
// bound on an admin action, so that their answer arrives.
const defaultTimeout = 20 * time.Second

// exitError is an error with its exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError reports a wrong command line (exit 2).
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// failed marks err, unless it already has a code, as a failed operation
// (exit 1).
func failed(err error) error {
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitFailed, err: err}
}

// globals are the flags every command takes.
type globals struct {
	node    string
	token   string
	output  string
	timeout time.Duration
	// caFile and insecure choose how the node's TLS certificate is
	// checked (see tlsFor).
	caFile   string
	insecure bool
	// etcd chooses read-only etcd mode (etcdmode.go).
	etcd etcdFlags
}

// run executes the command line args and returns the exit code. getenv
// supplies the environment (os.Getenv in main); ctx ends watch.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	root := newRootCommand(getenv)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "clusterkit: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) && ee.code != exitUsage {
		return ee.code
	}
	// Cobra's own errors (unknown command or flag, wrong argument count)
	// are usage errors too.
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	return exitUsage
}

func newRootCommand(getenv func(string) string) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "clusterkit",
		Short: "Operate a ClusterKit cluster through any node's HTTP API, or read it from etcd",
		Long: `clusterkit shows and operates a ClusterKit cluster through the HTTP API
that every node serves on its HTTPAddr. Any node answers for the whole
cluster; admin commands need the cluster token (the nodes' ClusterToken).
A join token "ck1.<ca-sha256>.<secret>" (a node's JoinToken) makes the CLI
use https and accept only a node whose certificate chain holds that CA;
--ca-file checks the certificate against given CAs instead, and
--insecure-skip-tls-verify not at all. Secure nodes refuse the token over
plain http.

Read-only etcd mode: with --etcd (the etcd client URLs, comma-separated)
status, members, partitions, locate and watch read the cluster's state
straight from etcd, as a clusterkit.Router does, without asking any node;
--cluster names the cluster (default "default"). A secure cluster's
embedded etcd wants a client certificate of the cluster CA: get one with
'clusterkit cert issue --name NAME --out DIR' (through --node, with the
ck1. token) and pass --cert, --key and --cacert. What only a node knows
is not shown in etcd mode: health (per-node and the cluster's checks), the
asked node, its etcd connection and handoffs. The admin commands need
--node.

The node defaults to $` + envNode + ` and the token to $` + envToken + `.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return checkMode(cmd, g)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError("%v", err) })
	f := root.PersistentFlags()
	f.StringVar(&g.node, "node", getenv(envNode), "a node's HTTP API: host:port, or a URL such as https://host:port/prefix (env "+envNode+")")
	f.StringVar(&g.token, "token", getenv(envToken), "the cluster token for admin commands (env "+envToken+")")
	f.StringVar(&g.caFile, "ca-file", "", "PEM CA certificate(s) the node's https certificate must chain to (its HTTPTLS CA, or the cluster's DataDir/tls/ca.crt)")
	f.BoolVar(&g.insecure, "insecure-skip-tls-verify", false, "use https without checking the node's certificate (a ck1. token's pin is checked instead when given)")
	f.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	f.DurationVar(&g.timeout, "timeout", defaultTimeout, "how long one request to the node (or the first read from etcd) may take")
	f.StringVar(&g.etcd.endpoints, "etcd", "", "read-only etcd mode: the cluster's etcd client URLs, comma-separated (instead of --node)")
	f.StringVar(&g.etcd.cluster, "cluster", clusterkit.DefaultClusterName, "the cluster's name (the nodes' ClusterName), with --etcd")
	f.StringVar(&g.etcd.cert, "cert", "", "with --etcd: PEM client certificate of the cluster CA (clusterkit cert issue)")
	f.StringVar(&g.etcd.key, "key", "", "with --etcd: the client certificate's PEM key")
	f.StringVar(&g.etcd.cacert, "cacert", "", "with --etcd: PEM CA certificate that etcd's server certificate chains to (the cluster's ca.crt)")
	root.AddCommand(
		readOnly(newStatusCommand(g)),
		readOnly(newMembersCommand(g)),
		readOnly(newPartitionsCommand(g)),
		readOnly(newLocateCommand(g)),
		readOnly(newWatchCommand(g)),
		newCertCommand(g),
		newRebalanceCommand(g),
		newRemoveCommand(g),
		newTokenCommand(g),
	)
	root.AddCommand(nodeOpCommands(g)...)
	return root
}

// exactArgs is cobra.ExactArgs with a usage error that names the
// arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == len(names):
		case len(names) == 0:
			return usageError("%s takes no arguments, got %d", cmd.Name(), len(args))
		default:
			return usageError("%s takes %s, got %d argument(s)", cmd.Name(), strings.Join(names, " "), len(args))
		}
		return nil
	}
}
