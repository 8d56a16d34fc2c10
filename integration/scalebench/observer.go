package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// write is one etcd revision under the cluster's prefix, as the observer's
// watch saw it: one Put or one Txn of ClusterKit.
type write struct {
	at    time.Time // when the observer received it
	rev   int64
	bytes int // keys + values put, the request's payload
	// assignment: the revision puts the partition map; kinds counts the
	// revision's events by what they touch (member put/delete, ready, …).
	assignment bool
	kinds      map[string]int
}

// observer watches the cluster's prefix with a client of its own and
// records every revision, so that a step can count the writes it caused,
// their sizes and when they happened. It is the (N+1)-th watcher.
type observer struct {
	root   string
	cli    *clientv3.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	writes []write
	err    error
}

func startObserver(endpoints []string, root string) (*observer, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		MaxCallRecvMsgSize: 64 << 20})
	if err != nil {
		return nil, fmt.Errorf("observer client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &observer{root: root, cli: cli, cancel: cancel, done: make(chan struct{})}
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), root, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	created := <-wch
	if err := created.Err(); err != nil {
		cancel()
		cli.Close()
		return nil, fmt.Errorf("observer watch: %w", err)
	}
	go o.run(wch)
	return o, nil
}

func (o *observer) run(wch clientv3.WatchChan) {
	defer close(o.done)
	for resp := range wch {
		now := time.Now()
		if err := resp.Err(); err != nil {
			o.mu.Lock()
			o.err = err
			o.mu.Unlock()
			return
		}
		o.mu.Lock()
		for _, e := range resp.Events {
			rev := e.Kv.ModRevision
			if n := len(o.writes); n == 0 || o.writes[n-1].rev != rev {
				o.writes = append(o.writes, write{at: now, rev: rev, kinds: map[string]int{}})
			}
			w := &o.writes[len(o.writes)-1]
			kind := o.kind(string(e.Kv.Key), e.Type)
			w.kinds[kind]++
			if e.Type == mvccpb.PUT {
				w.bytes += len(e.Kv.Key) + len(e.Kv.Value)
				w.assignment = w.assignment || kind == "assignment" || kind == "map"
			}
		}
		o.mu.Unlock()
	}
}

// kind names what a key is and whether it was deleted ("members",
// "members-delete", "ready", "assignment", …).
func (o *observer) kind(key string, t mvccpb.Event_EventType) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(key, o.root), "/")
	if t == mvccpb.DELETE {
		return name + "-delete"
	}
	return name
}

// mark returns the number of writes seen so far: since(mark) returns the
// ones after it.
func (o *observer) mark() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.writes)
}

func (o *observer) since(mark int) ([]write, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]write(nil), o.writes[mark:]...), o.err
}

// quietSince reports whether no write arrived during the last d.
func (o *observer) quietFor(d time.Duration) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.writes) == 0 || time.Since(o.writes[len(o.writes)-1].at) >= d
}

func (o *observer) close() {
	o.cancel()
	<-o.done
	o.cli.Close()
}
