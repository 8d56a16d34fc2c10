package clusterkit

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/watcher"
)

// MapPrefix returns the etcd prefix of cluster's partition map (its parts).
func MapPrefix(cluster string) string { return newKeys(cluster).mapPrefix() }

// MapWatcher assembles the partition maps written under MapPrefix from a
// watch of it, with the decoder the nodes use.
type MapWatcher struct {
	v *view
	d decoder
}

func NewMapWatcher(cluster string, partitions int) *MapWatcher {
	return &MapWatcher{v: newView(partitions), d: decoder{keys: newKeys(cluster), partitions: partitions, log: zap.NewNop()}}
}

// Apply applies the events of one revision (one Txn) and, when they
// commit a map version, returns its incoming handoffs: in total and per
// receiving node (ok false: no new version).
func (w *MapWatcher) Apply(events []*clientv3.Event) (ok bool, total int, perNode map[string]int, err error) {
	b := watcher.Batch{}
	for _, e := range events {
		ev := watcher.Event{Type: watcher.Put, Key: string(e.Kv.Key), Value: e.Kv.Value, ModRevision: e.Kv.ModRevision}
		if e.Type == clientv3.EventTypeDelete {
			ev.Type = watcher.Delete
		}
		b.Events, b.Revision = append(b.Events, ev), e.Kv.ModRevision
	}
	before := w.v.assign
	w.d.apply(w.v, b, time.Now())
	if w.v.parts.pending != nil || w.v.parts.metaBad {
		return false, 0, nil, errors.New("a map version could not be applied")
	}
	if w.v.assign == before {
		return false, 0, nil, nil
	}
	perNode = map[string]int{}
	for _, p := range w.v.assign.Partitions {
		for _, in := range p.Incoming {
			perNode[in.Node]++
			total++
		}
	}
	return true, total, perNode, nil
}

// RenewCertificateNow makes ck's certificate renewal loop renew at once
// (secure embedded mode; ck started).
func RenewCertificateNow(ck *ClusterKit) { ck.active.Load().certKick <- struct{}{} }

// EtcdDial opens a new connection to ep with ck's etcd client (its TLS
// credentials, read at the handshake).
func EtcdDial(ck *ClusterKit, ep string) (*grpc.ClientConn, error) {
	return ck.active.Load().eps.dial(ep)
}

// EtcdEndpoints are ck's etcd client's endpoints.
func EtcdEndpoints(ck *ClusterKit) []string { return ck.active.Load().cli.Endpoints() }

// SetTestDialOptions adds opts to the etcd client of every node created
// while t runs (to inject a fault, see etcdtest.LateWrite).
func SetTestDialOptions(t testing.TB, opts ...grpc.DialOption) {
	testDialOptions = opts
	t.Cleanup(func() { testDialOptions = nil })
}
