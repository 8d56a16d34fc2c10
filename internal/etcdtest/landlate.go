package etcdtest

import (
	"bytes"
	"context"
	"errors"
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
// later, after a newer write. That is what an etcd under load may do with
// a request whose client timed out. A write is a Put, a Delete, or a Txn
// that puts or deletes (either branch; a delete has a nil value).
type LateWrite struct {
	// Held is closed when the first matching write is held; Landed
	// receives the late request's error once it was sent.
	Held   <-chan struct{}
	Landed <-chan error

	match  func(key, value []byte) bool
	auto   bool // send the held request after the next matching write
	held   chan struct{}
	landed chan error

	mu    sync.Mutex
	first bool
	key   []byte
	value []byte
	late  func() // the held request, until it is sent
}

// NewLateWrite returns the fault for the first write whose key and value
// match selects; the held request reaches etcd right after the first later
// write that match also selects, of another key or value, succeeded.
func NewLateWrite(match func(key, value []byte) bool) *LateWrite {
	w := newLateWrite(match)
	w.auto = true
	return w
}

// NewHeldWrite returns the fault for the first write whose key and value
// match selects; the held request reaches etcd when the test calls Land.
func NewHeldWrite(match func(key, value []byte) bool) *LateWrite { return newLateWrite(match) }

func newLateWrite(match func(key, value []byte) bool) *LateWrite {
	w := &LateWrite{match: match, held: make(chan struct{}), landed: make(chan error, 1), first: true}
	w.Held, w.Landed = w.held, w.landed
	return w
}

// DialOption installs the fault on a client.
func (w *LateWrite) DialOption() grpc.DialOption { return grpc.WithChainUnaryInterceptor(w.intercept) }

// Land sends the held request now and returns its error (after Held).
func (w *LateWrite) Land() error {
	w.mu.Lock()
	send := w.late
	w.late = nil
	w.mu.Unlock()
	if send == nil {
		return errors.New("etcdtest: no write is held")
	}
	send()
	return <-w.landed
}

func (w *LateWrite) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	key, value, ok := writeOf(req)
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
	if err != nil || !w.auto {
		return err
	}
	w.mu.Lock()
	var send func()
	if w.late != nil && w.match(key, value) && !(bytes.Equal(key, w.key) && bytes.Equal(value, w.value)) {
		send, w.late = w.late, nil
	}
	w.mu.Unlock()
	if send != nil {
		send()
	}
	return nil
}

// writeOf returns the key and value req writes (nil for a delete), if it
// is a Put, a Delete, or a Txn that puts or deletes.
func writeOf(req any) (key, value []byte, ok bool) {
	switch r := req.(type) {
	case *etcdserverpb.PutRequest:
		return r.Key, r.Value, true
	case *etcdserverpb.DeleteRangeRequest:
		return r.Key, nil, true
	case *etcdserverpb.TxnRequest:
		for _, op := range append(slices.Clip(r.Success), r.Failure...) {
			if p := op.GetRequestPut(); p != nil {
				return p.Key, p.Value, true
			}
			if d := op.GetRequestDeleteRange(); d != nil {
				return d.Key, nil, true
			}
		}
	}
	return nil, nil, false
}
