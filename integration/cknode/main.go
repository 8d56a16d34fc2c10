// Command cknode runs one ClusterKit node for the process-level fault tests
// in package integration: it starts a node from its flags, registers every
// hook, and writes what the node observes to stdout as JSON lines (one
// object per line, see record), so a test can check invariants over
// everything every node saw. SIGTERM stops the node gracefully (exit 0 when
// Stop returned nil, 1 otherwise); SIGKILL and SIGSTOP are the faults.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// record is one line of output. Kind says which fields are set:
//
//	started    Start returned (Err set if it failed; Token: the node's JoinToken in secure mode)
//	map        this node's map changed for partition P (Epoch, Primary, Serving, Incoming, Version)
//	join       OnNodeJoin (Node)
//	rejoin     OnNodeRejoin (Node, Offline, Before, Same, Kept)
//	leave      OnNodeLeave (Node, Reason)
//	change     OnPartitionChange (P, Node = CopyToNode, From, NoSource, Promoted, CatchUp, Reason, Epoch)
//	maint      this node's map entered (Status = reason) or left (Status "") maintenance mode
//	rb_start   OnRebalanceStart (RB, Reason, Moves)
//	rb_done    OnRebalanceComplete (RB, Took)
//	health     OnClusterHealthChange (Status)
//	stopped    Stop returned (Err, Took)
type record struct {
	T        int64    `json:"t"` // unix nanoseconds
	Self     string   `json:"self"`
	Kind     string   `json:"kind"`
	P        int      `json:"p,omitempty"`
	Epoch    uint64   `json:"epoch,omitempty"`
	Version  int64    `json:"version,omitempty"`
	Primary  string   `json:"primary,omitempty"`
	Serving  []string `json:"serving,omitempty"`
	Incoming []string `json:"incoming,omitempty"`
	Node     string   `json:"node,omitempty"`
	Inc      int64    `json:"inc,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	From     []string `json:"from,omitempty"`
	NoSource bool     `json:"nosource,omitempty"`
	Promoted bool     `json:"promoted,omitempty"`
	CatchUp  bool     `json:"catchup,omitempty"`
	Same     bool     `json:"same,omitempty"`
	Kept     bool     `json:"kept,omitempty"`
	Offline  float64  `json:"offline,omitempty"` // seconds
	Before   []string `json:"before,omitempty"`
	RB       int64    `json:"rb,omitempty"`
	Moves    int      `json:"moves,omitempty"`
	Status   string   `json:"status,omitempty"`
	Err      string   `json:"err,omitempty"`
	Took     float64  `json:"took,omitempty"` // seconds
	Token    string   `json:"token,omitempty"`
}

type output struct {
	mu   sync.Mutex
	enc  *json.Encoder
	self string
}

func (o *output) emit(r record) {
	r.T = time.Now().UnixNano()
	r.Self = o.self
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.enc.Encode(r)
}

func main() {
	var (
		id         = flag.String("id", "", "node ID")
		httpAddr   = flag.String("http", "127.0.0.1:0", "HTTP address")
		join       = flag.String("join", "", "HTTP address of a node to join")
		dataDir    = flag.String("data", "", "data directory")
		etcd       = flag.String("etcd", "", "external etcd endpoints, comma separated (external mode)")
		etcdClient = flag.String("etcd-client", "", "embedded etcd client host:port")
		etcdPeer   = flag.String("etcd-peer", "", "embedded etcd peer host:port")
		ttl        = flag.Duration("ttl", 2*time.Second, "lease TTL")
		parts      = flag.Int("partitions", 64, "partition count")
		rf         = flag.Int("rf", 3, "replication factor")
		voters     = flag.Int("voters", 3, "max etcd voters")
		fastEtcd   = flag.Bool("fast-etcd", true, "etcd ticks of 10 ms / 100 ms")
		logFile    = flag.String("log", "", "write the node's debug log to this file")
		delay      = flag.Duration("rebalance-delay", 0, "Options.RebalanceDelay (0: default, negative: none)")
		durable    = flag.Bool("durable", false, "Options.DurableStorage")
		maintShare = flag.Float64("maint-share", 0, "Options.Maintenance.Share (0: default)")
		token      = flag.String("token", "fault-test", "Options.ClusterToken: a secret shared by the nodes, or the first node's join token (ck1.…)")
		insecure   = flag.Bool("insecure", false, "Options.InsecurePlaintext")
	)
	flag.Parse()
	out := &output{enc: json.NewEncoder(os.Stdout), self: *id}
	opts := clusterkit.Options{
		NodeID:            *id,
		HTTPAddr:          *httpAddr,
		JoinAddr:          *join,
		DataDir:           *dataDir,
		PartitionCount:    *parts,
		ReplicationFactor: *rf,
		LeaseTTL:          *ttl,
		ClusterToken:      *token,
		InsecurePlaintext: *insecure,
		RebalanceDelay:    *delay,
		DurableStorage:    *durable,
		Maintenance:       clusterkit.MaintenanceConfig{Share: *maintShare},
		Embedded: clusterkit.EmbeddedConfig{
			ClientAddr: *etcdClient,
			PeerAddr:   *etcdPeer,
			MaxVoters:  *voters,
		},
	}
	if *fastEtcd {
		opts.Embedded.TickInterval = 10 * time.Millisecond
		opts.Embedded.ElectionTimeout = 100 * time.Millisecond
	}
	if *etcd != "" {
		opts.Etcd.Endpoints = strings.Split(*etcd, ",")
	}
	if *logFile != "" {
		cfg := zap.NewDevelopmentConfig()
		cfg.OutputPaths = []string{*logFile}
		cfg.ErrorOutputPaths = []string{*logFile}
		l, err := cfg.Build()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer l.Sync()
		opts.Logger = l
	}
	os.Exit(run(opts, out))
}

func run(opts clusterkit.Options, out *output) int {
	ck, err := clusterkit.New(opts)
	if err != nil {
		out.emit(record{Kind: "started", Err: err.Error()})
		return 2
	}
	observe(ck, out)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	sctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	err = ck.Start(sctx)
	cancel()
	if err != nil {
		out.emit(record{Kind: "started", Err: err.Error()})
		return 2
	}
	tok, _ := ck.JoinToken() // "" with -insecure or external etcd
	out.emit(record{Kind: "started", Token: tok})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { watchMap(ck, out, done) })
	<-term
	close(done)
	wg.Wait()
	begin := time.Now()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = ck.Stop(stopCtx)
	r := record{Kind: "stopped", Took: time.Since(begin).Seconds()}
	if err != nil {
		r.Err = err.Error()
	}
	out.emit(r)
	if err != nil {
		return 1
	}
	return 0
}

// observe registers a handler for every hook; each writes one record.
func observe(ck *clusterkit.ClusterKit, out *output) {
	ck.OnNodeJoin(func(e *clusterkit.NodeJoinEvent) {
		out.emit(record{Kind: "join", Node: e.Node.ID, Inc: e.Node.Incarnation})
	})
	ck.OnNodeRejoin(func(e *clusterkit.NodeRejoinEvent) {
		out.emit(record{Kind: "rejoin", Node: e.Node.ID, Inc: e.Node.Incarnation,
			Offline: e.OfflineDuration.Seconds(), Before: e.PartitionsBeforeLeave, Same: e.SameIncarnation, Kept: e.DataKept})
	})
	ck.OnNodeLeave(func(e *clusterkit.NodeLeaveEvent) {
		out.emit(record{Kind: "leave", Node: e.Node.ID, Inc: e.Node.Incarnation, Reason: fmt.Sprint(e.Reason)})
	})
	ck.OnPartitionChange(func(_ context.Context, e *clusterkit.PartitionChangeEvent) error {
		from := make([]string, len(e.CopyFromNodes))
		for i, n := range e.CopyFromNodes {
			from[i] = n.ID
		}
		out.emit(record{Kind: "change", P: e.PartitionIndex, Node: e.CopyToNode.ID, From: from,
			NoSource: e.NoSource, Promoted: e.Promoted, CatchUp: e.CatchUp, Reason: fmt.Sprint(e.ChangeReason), Epoch: e.Epoch})
		return nil
	})
	ck.OnRebalanceStart(func(e *clusterkit.RebalanceEvent) {
		out.emit(record{Kind: "rb_start", RB: e.ID, Reason: fmt.Sprint(e.Trigger), Node: e.TriggerNodeID, Moves: e.PartitionsToMove})
	})
	ck.OnRebalanceComplete(func(e *clusterkit.RebalanceEvent, took time.Duration) {
		out.emit(record{Kind: "rb_done", RB: e.ID, Took: took.Seconds()})
	})
	ck.OnClusterHealthChange(func(e *clusterkit.ClusterHealthEvent) {
		out.emit(record{Kind: "health", Status: fmt.Sprint(e.Status)})
	})
}

// watchMap samples the node's map every 10 ms and writes a record for
// every partition whose epoch, serving set or incoming set changed.
func watchMap(ck *clusterkit.ClusterKit, out *output, done <-chan struct{}) {
	type seen struct {
		epoch             uint64
		serving, incoming string
	}
	last := map[int]seen{}
	maint := ""
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c := ck.GetCluster()
		if c.Maintenance != maint {
			maint = c.Maintenance
			out.emit(record{Kind: "maint", Status: maint, Version: c.AssignmentVersion})
		}
		for _, p := range c.Partitions {
			serving := append([]string{p.PrimaryNode}, p.ReplicaNodes...)
			s := seen{p.Epoch, strings.Join(serving, ","), strings.Join(p.IncomingNodes, ",")}
			if last[p.Index] == s || p.PrimaryNode == "" {
				continue
			}
			last[p.Index] = s
			out.emit(record{Kind: "map", P: p.Index, Epoch: p.Epoch, Version: c.AssignmentVersion,
				Primary: p.PrimaryNode, Serving: serving, Incoming: p.IncomingNodes})
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}
