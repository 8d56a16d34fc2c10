package clusterkit

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// LandLate makes the first etcd write of a key ending in suffix (a Put, or
// a Txn that puts it), by any node whose client is created while t runs,
// fail at once with DeadlineExceeded, as a request its client gave up on,
// and reach etcd right after the first later write of another value to
// that key succeeded: what an etcd under load may do with a request whose
// client timed out. held is closed when the first write is held; landed
// receives the late request's error.
func LandLate(t testing.TB, suffix string) (held <-chan struct{}, landed <-chan error) {
	heldCh, landedCh := make(chan struct{}), make(chan error, 1)
	var mu sync.Mutex
	first := true
	var heldValue []byte
	var late func() // the held request, until it is sent
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		value, ok := writtenValue(req, suffix)
		if !ok {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		mu.Lock()
		if first {
			first, heldValue = false, value
			late = func() {
				out := reflect.New(reflect.TypeOf(reply).Elem()).Interface()
				landedCh <- invoker(context.Background(), method, req, out, cc, opts...)
			}
			mu.Unlock()
			close(heldCh)
			return status.Error(codes.DeadlineExceeded, "held by the test, to land late")
		}
		mu.Unlock()
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil {
			mu.Lock()
			var send func()
			if late != nil && !bytes.Equal(value, heldValue) {
				send, late = late, nil
			}
			mu.Unlock()
			if send != nil {
				send()
			}
		}
		return err
	}
	testDialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(intercept)}
	t.Cleanup(func() { testDialOptions = nil })
	return heldCh, landedCh
}

// writtenValue returns the value req puts at a key ending in suffix, if
// it is a Put or a Txn that puts one.
func writtenValue(req any, suffix string) ([]byte, bool) {
	switch r := req.(type) {
	case *etcdserverpb.PutRequest:
		return r.Value, strings.HasSuffix(string(r.Key), suffix)
	case *etcdserverpb.TxnRequest:
		for _, op := range append(slices.Clip(r.Success), r.Failure...) {
			if p := op.GetRequestPut(); p != nil && strings.HasSuffix(string(p.Key), suffix) {
				return p.Value, true
			}
		}
	}
	return nil, false
}
