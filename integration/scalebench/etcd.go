package main

import (
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// etcdServer is the one embedded etcd member every node of a trial talks
// to (external mode), with the quiet, fast test configuration of package
// etcdtest and a backend quota large enough for the biggest maps.
type etcdServer struct {
	e *embed.Etcd
}

// startEtcd starts a one-member etcd with its data in dir on free
// loopback ports.
func startEtcd(dir string) (*etcdServer, error) {
	peer, err := freeLoopbackURL()
	if err != nil {
		return nil, err
	}
	client := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg := etcdtest.FastConfig("scalebench", dir, client, peer, "scalebench="+peer.String())
	cfg.QuotaBackendBytes = 8 << 30 // formation of 1,000 nodes writes hundreds of maximal maps
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(10 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd not ready after 10s")
	}
	return &etcdServer{e: e}, nil
}

// endpoints returns the client URLs (the bound port, not 0).
func (s *etcdServer) endpoints() []string {
	return []string{"http://" + s.e.Clients[0].Addr().String()}
}

// close stops the server and waits for it.
func (s *etcdServer) close() {
	s.e.Close()
	<-s.e.Server.StopNotify()
}

func freeLoopbackURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}

// etcdCounters are the embedded server's cumulative counters that a step
// is measured by (etcd registers them on the default Prometheus registry,
// once per process; they survive a server restart).
type etcdCounters struct {
	// sent: every gRPC message the server marshalled to clients (watch
	// events, responses, keep-alive answers); received: every request.
	sent, received float64
	puts, txns     float64
	putBytes       float64 // etcd_debugging_mvcc_total_put_size_in_bytes: key+value bytes put
}

func readEtcdCounters() (etcdCounters, error) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return etcdCounters{}, fmt.Errorf("gather etcd metrics: %w", err)
	}
	var c etcdCounters
	for _, mf := range mfs {
		var dst *float64
		switch mf.GetName() {
		case "etcd_network_client_grpc_sent_bytes_total":
			dst = &c.sent
		case "etcd_network_client_grpc_received_bytes_total":
			dst = &c.received
		case "etcd_mvcc_put_total":
			dst = &c.puts
		case "etcd_mvcc_txn_total":
			dst = &c.txns
		case "etcd_debugging_mvcc_total_put_size_in_bytes":
			dst = &c.putBytes
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				*dst += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				*dst += m.GetGauge().GetValue()
			}
		}
	}
	return c, nil
}

func (c etcdCounters) minus(o etcdCounters) etcdCounters {
	return etcdCounters{sent: c.sent - o.sent, received: c.received - o.received, puts: c.puts - o.puts,
		txns: c.txns - o.txns, putBytes: c.putBytes - o.putBytes}
}
