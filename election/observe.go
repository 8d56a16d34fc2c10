package election

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Leader describes the leader of an election: the candidate whose key has
// the lowest create revision under the election prefix. The zero value
// (Key == "") means that there is no leader. Leader values are comparable
// with ==.
type Leader struct {
	// Key is the leader's key, "<prefix>/<lease hex>"; "" if no leader.
	Key string
	// Value is the value the leader campaigned with (or proclaimed since).
	Value string
	// Token is the key's create revision: the leader's fencing token.
	Token int64
}

// Current returns the current leader of the election on prefix, or the zero
// Leader if there is none, with one linearizable read bounded by ctx and a
// 5 s timeout. It is safe for concurrent use.
func Current(ctx context.Context, cli *clientv3.Client, prefix string) (Leader, error) {
	if cli == nil {
		return Leader{}, fmt.Errorf("%w: client is nil", ErrInvalidArgument)
	}
	name, err := electionName(prefix)
	if err != nil {
		return Leader{}, err
	}
	gctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), opTimeout)
	defer cancel()
	resp, err := cli.Get(gctx, name+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return Leader{}, fmt.Errorf("election: current leader of %q: %w", name+"/", err)
	}
	if len(resp.Kvs) == 0 {
		return Leader{}, nil
	}
	return leaderOf(resp.Kvs[0]), nil
}

// Observe reports the leader of the election on prefix: first the leader at
// the first successful read (the zero Leader if there is none), then every
// change, including to "no leader" when the last candidate resigns or its
// lease ends.
//
// Delivery contract: values come from one goroutine, in etcd's order, and
// two consecutive values always differ. The goroutine never blocks on a
// slow reader: while a value waits to be received, newer changes replace it,
// so a slow reader gets the latest leader and may miss intermediate ones (a
// return to the value it last received, e.g. no leader → a → no leader, is
// then not reported at all; tokens never repeat, so this can only hide a
// whole term that began and ended while the reader was not reading).
// While etcd cannot be read nothing is sent (the last value stays the last
// known leader); the goroutine watches with WithRequireLeader and, after a
// compaction or a broken watch, re-reads the prefix and resumes from that
// read, retrying with backoff.
//
// The channel is closed when ctx ends or cli is closed; the goroutine exits
// right after closing it, so a caller that cancels ctx and reads until the
// channel is closed has awaited it. The error is non-nil (wrapping
// ErrInvalidArgument) only for a nil client or an empty prefix.
func Observe(ctx context.Context, cli *clientv3.Client, prefix string) (<-chan Leader, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: client is nil", ErrInvalidArgument)
	}
	name, err := electionName(prefix)
	if err != nil {
		return nil, err
	}
	ch := make(chan Leader)
	o := &observer{cli: cli, keyPrefix: name + "/", out: ch}
	go o.run(ctx)
	return ch, nil
}

// observer is the state of one Observe goroutine; only that goroutine uses
// it.
type observer struct {
	cli       *clientv3.Client
	keyPrefix string
	out       chan<- Leader
	wcancel   context.CancelFunc // cancels the current watch; nil if none

	cands   map[string]*mvccpb.KeyValue // the candidates' keys, by key
	sent    bool                        // last is valid
	last    Leader                      // the last value received by the reader
	next    Leader                      // the value to send if pending
	pending bool
}

func (o *observer) run(ctx context.Context) {
	defer close(o.out)
	var (
		wch     clientv3.WatchChan
		timer   *time.Timer
		retry   <-chan time.Time // timer.C while waiting to re-read
		backoff = minBackoff
		healthy bool // the current watch delivered a response
	)
	defer func() {
		o.stopWatch()
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if ctx.Err() != nil || o.cli.Ctx().Err() != nil {
			return
		}
		if wch == nil && retry == nil {
			rev, err := o.read(ctx)
			if err != nil {
				timer = time.NewTimer(backoff)
				retry = timer.C
				backoff = min(2*backoff, maxBackoff)
			} else {
				healthy = false
				wch = o.watch(ctx, o.keyPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
			}
		}
		var out chan<- Leader
		if o.pending {
			out = o.out
		}
		select {
		case <-ctx.Done():
			return
		case out <- o.next:
			o.last, o.sent, o.pending = o.next, true, false
		case <-retry:
			retry = nil
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				// Compacted, etcd leader lost, or closing: re-read, at once
				// if this watch worked for a while, else after a backoff so
				// that a watch that keeps failing does not hammer etcd.
				o.stopWatch()
				wch = nil
				if healthy {
					backoff = minBackoff
				} else {
					timer = time.NewTimer(backoff)
					retry = timer.C
					backoff = min(2*backoff, maxBackoff)
				}
				continue
			}
			healthy = true
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					delete(o.cands, string(ev.Kv.Key))
				} else {
					o.cands[string(ev.Kv.Key)] = ev.Kv
				}
			}
			o.update()
		}
	}
}

// watch starts a watch of the prefix, cancelled by stopWatch.
func (o *observer) watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	o.wcancel = cancel
	return o.cli.Watch(wctx, key, opts...)
}

// stopWatch cancels the current watch, if any.
func (o *observer) stopWatch() {
	if o.wcancel != nil {
		o.wcancel()
		o.wcancel = nil
	}
}

// read replaces the candidates with a fresh read of the prefix and returns
// the read's revision.
func (o *observer) read(ctx context.Context) (int64, error) {
	gctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), opTimeout)
	defer cancel()
	resp, err := o.cli.Get(gctx, o.keyPrefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	o.cands = make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		o.cands[string(kv.Key)] = kv
	}
	o.update()
	return resp.Header.Revision, nil
}

// update recomputes the leader and marks it pending unless the reader
// already has it.
func (o *observer) update() {
	var first *mvccpb.KeyValue
	for _, kv := range o.cands {
		if first == nil || kv.CreateRevision < first.CreateRevision {
			first = kv
		}
	}
	var l Leader
	if first != nil {
		l = leaderOf(first)
	}
	if o.sent && l == o.last {
		o.pending = false
		return
	}
	o.next, o.pending = l, true
}

func leaderOf(kv *mvccpb.KeyValue) Leader {
	return Leader{Key: string(kv.Key), Value: string(kv.Value), Token: kv.CreateRevision}
}
