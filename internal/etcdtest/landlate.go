package etcdtest

import (
	"bytes"
	"context"
	"reflect"
	"slices"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// LateWrite is a fault for an etcd client (its DialOption): the first write
// that match selects does not reach etcd before its caller's context ends
// (it fails then, as a request its client gave up on), and reaches etcd
// right after the first later write of another value to the same key
// succeeded. That is what an etcd under load
// may do with a request whose client timed out: apply it after the
// client's next one. A write is a Put, or a Txn that puts (either branch).
type LateWrite struct {
	// Held is closed when the first matching write is held; Landed then
	// receives the late request's error once it was sent.
	Held   <-chan struct{}
	Landed <-chan error

	match  func(key, value []byte) bool
	held   chan struct{}
	landed chan error

	mu    sync.Mutex
	first bool
	key   []byte
	value []byte
	late  func() // the held request, until it is sent
}

// NewLateWrite returns the fault for the first write whose key and value
// match selects.
func NewLateWrite(match func(key, value []byte) bool) *LateWrite {
	w := &LateWrite{match: match, held: make(chan struct{}), landed: make(chan error, 1), first: true}
	w.Held, w.Landed = w.held, w.landed
	return w
}

// DialOption installs the fault on a client.
func (w *LateWrite) DialOption() grpc.DialOption { return grpc.WithChainUnaryInterceptor(w.intercept) }

func (w *LateWrite) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	key, value, ok := putOf(req)
	if !ok {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	w.mu.Lock()
	if w.first && w.match(key, value) {
		w.first, w.key, w.value = false, key, value
		w.late = func() {
			out := reflect.New(reflect.TypeOf(reply).Elem()).Interface()
			w.landed <- invoker(context.Background(), method, req, out, cc, opts...)
		}
		w.mu.Unlock()
		close(w.held)
		<-ctx.Done() // as if the request were in flight until its caller gave up
		return status.FromContextError(ctx.Err()).Err()
	}
	w.mu.Unlock()
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err != nil {
		return err
	}
	w.mu.Lock()
	var send func()
	if w.late != nil && bytes.Equal(key, w.key) && !bytes.Equal(value, w.value) {
		send, w.late = w.late, nil
	}
	w.mu.Unlock()
	if send != nil {
		send()
	}
	return nil
}

// putOf returns the key and value req puts, if it is a Put or a Txn that
// puts.
func putOf(req any) (key, value []byte, ok bool) {
	switch r := req.(type) {
	case *etcdserverpb.PutRequest:
		return r.Key, r.Value, true
	case *etcdserverpb.TxnRequest:
		for _, op := range append(slices.Clip(r.Success), r.Failure...) {
			if p := op.GetRequestPut(); p != nil {
				return p.Key, p.Value, true
			}
		}
	}
	return nil, nil, false
}
