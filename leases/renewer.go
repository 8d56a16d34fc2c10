package leases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// renewer sends the keep-alives of one lease, each on a gRPC connection of
// its own that is pinned to one etcd endpoint (clientv3.Client.Dial: the
// client's TLS, auth and gRPC settings), instead of through the client's
// round-robin balancer: that balancer keeps picking a member whose
// connection is open but which answers nothing (frozen, partitioned away)
// until gRPC's keep-alive drops the connection, 10 s + the ping timeout
// later at the earliest (gRPC raises a shorter ping interval to 10 s),
// which is longer than a lease's TTL here.
//
// One renewal (round) is hedged across endpoints. It starts with the
// endpoint that answered last; whenever no attempt has answered for the
// hedge delay (TTL/4), or an attempt fails, it starts another on the next
// endpoint in the client's list that has no attempt running. The first
// success ends the round; slow attempts are not abandoned before then (a
// loaded etcd may still answer them), but their connections are closed at
// the end of the round and dialed again on next use. Every attempt is
// bounded by the lease's estimated expiry and the request timeout.
//
// A renewer is used by one goroutine at a time (the Registration's
// keep-alive loop); close releases its connections.
type renewer struct {
	cli     *clientv3.Client
	dial    Dialer
	id      clientv3.LeaseID
	hedge   time.Duration // start another attempt after this long without an answer
	retry   time.Duration // do not retry an endpoint that failed sooner than this
	timeout time.Duration // bound of one attempt (the request timeout)

	conns map[string]*grpc.ClientConn // by endpoint, dialed on first use
	last  string                      // the endpoint that answered last
	term  uint64                      // highest raft term seen in an answer
}

// newRenewer makes the renewer of lease id; dial connects to one endpoint
// (nil: cli.Dial).
func newRenewer(cli *clientv3.Client, dial Dialer, id clientv3.LeaseID, ttl, requestTimeout time.Duration) *renewer {
	if dial == nil {
		dial = cli.Dial
	}
	return &renewer{
		cli:     cli,
		dial:    dial,
		id:      id,
		hedge:   min(ttl/4, requestTimeout),
		retry:   min(max(ttl/10, 50*time.Millisecond), 500*time.Millisecond),
		timeout: requestTimeout,
		conns:   make(map[string]*grpc.ClientConn),
	}
}

// attempt is the outcome of one keep-alive on one endpoint.
type attempt struct {
	ep     string
	sentAt time.Time
	term   uint64 // raft term of the member that answered
	err    error
}

// renew renews the lease once, trying endpoints as described on renewer,
// until one acknowledges the keep-alive, etcd says the lease is gone
// (rpctypes.ErrLeaseNotFound), expiry passes, or ctx ends. It returns the
// send time of the acknowledged keep-alive, or the last attempt's error
// (context.DeadlineExceeded if none ended before expiry).
func (rn *renewer) renew(ctx context.Context, expiry time.Time) (time.Time, error) {
	rctx, cancel := context.WithDeadline(clientv3.WithRequireLeader(ctx), expiry)
	var wg sync.WaitGroup
	running := map[string]bool{}
	defer func() {
		cancel()
		wg.Wait()
		// An endpoint that had not answered by the end of the round is not
		// trusted with its connection again.
		for ep := range running {
			rn.drop(ep)
		}
	}()
	eps := rn.endpoints()
	results := make(chan attempt, len(eps))
	failedAt := map[string]time.Time{}
	// launch starts an attempt on the next endpoint, if one is eligible.
	launch := func(now time.Time) bool {
		ep, ok := rn.pick(eps, running, failedAt, now)
		if !ok {
			return false
		}
		conn, err := rn.conn(ep)
		if err != nil {
			failedAt[ep] = now
			return false
		}
		running[ep] = true
		wg.Go(func() {
			actx, acancel := context.WithTimeout(rctx, rn.timeout)
			defer acancel()
			term, err := keepAliveOnce(actx, conn, rn.id)
			results <- attempt{ep: ep, sentAt: now, term: term, err: err}
		})
		return true
	}
	// next launches what it can and sets when to look again: after the
	// hedge delay if it launched, else after the retry interval.
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	next := func(now time.Time) {
		if launch(now) {
			timer.Reset(rn.hedge)
		} else {
			timer.Reset(rn.retry)
		}
	}
	var lastErr error = context.DeadlineExceeded
	next(time.Now())
	for {
		select {
		case <-rctx.Done():
			if ctx.Err() != nil {
				return time.Time{}, ctx.Err()
			}
			return time.Time{}, lastErr
		case now := <-timer.C:
			next(now)
		case a := <-results:
			delete(running, a.ep)
			if a.term < rn.term && (a.err == nil || errors.Is(a.err, rpctypes.ErrLeaseNotFound)) {
				// A member that has not yet learnt of the current raft term:
				// a paused old leader answers from its own lessor, which no
				// longer counts (etcd #15247).
				a.err = fmt.Errorf("answered from raft term %d, behind term %d", a.term, rn.term)
			}
			if a.err == nil {
				rn.last, rn.term = a.ep, a.term
				return a.sentAt, nil
			}
			if errors.Is(a.err, rpctypes.ErrLeaseNotFound) {
				return time.Time{}, a.err
			}
			lastErr = fmt.Errorf("%s: %w", a.ep, a.err)
			now := time.Now()
			failedAt[a.ep] = now
			next(now)
		}
	}
}

// pick returns the endpoint for the next attempt: the one that answered
// last, else the next one after it in eps that has no attempt running and
// did not fail within the retry interval.
func (rn *renewer) pick(eps []string, running map[string]bool, failedAt map[string]time.Time, now time.Time) (string, bool) {
	start := max(slices.Index(eps, rn.last), 0)
	for i := range eps {
		ep := eps[(start+i)%len(eps)]
		if running[ep] {
			continue
		}
		if at, failed := failedAt[ep]; failed && now.Sub(at) < rn.retry {
			continue
		}
		return ep, true
	}
	return "", false
}

// endpoints returns the client's current endpoints and closes the
// connections to endpoints it no longer has (etcd members removed, learned
// by the client's auto-sync).
func (rn *renewer) endpoints() []string {
	eps := rn.cli.Endpoints()
	for ep := range rn.conns {
		if !slices.Contains(eps, ep) {
			rn.drop(ep)
		}
	}
	return eps
}

// conn returns the connection pinned to ep, dialing it if needed (gRPC
// connects on first use; dialing fails only on a bad endpoint or
// configuration).
func (rn *renewer) conn(ep string) (*grpc.ClientConn, error) {
	if c, ok := rn.conns[ep]; ok {
		return c, nil
	}
	c, err := rn.dial(ep)
	if err != nil {
		return nil, err
	}
	rn.conns[ep] = c
	return c, nil
}

func (rn *renewer) drop(ep string) {
	if c, ok := rn.conns[ep]; ok {
		_ = c.Close()
		delete(rn.conns, ep)
	}
}

// close closes every connection of the renewer.
func (rn *renewer) close() {
	for ep := range rn.conns {
		rn.drop(ep)
	}
}

// keepAliveOnce sends one keep-alive for id on conn and waits for the
// answer. It returns nil if etcd renewed the lease,
// rpctypes.ErrLeaseNotFound if the lease is gone (with the answering
// member's raft term in both cases), and another error otherwise. Unlike
// clientv3's KeepAliveOnce it makes exactly one attempt (clientv3 retries
// on the same balancer until ctx ends).
func keepAliveOnce(ctx context.Context, conn *grpc.ClientConn, id clientv3.LeaseID) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream
	stream, err := pb.NewLeaseClient(conn).LeaseKeepAlive(ctx)
	if err != nil {
		return 0, clientv3.ContextError(ctx, err)
	}
	if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(id)}); err != nil {
		return 0, clientv3.ContextError(ctx, err)
	}
	resp, err := stream.Recv()
	if err != nil {
		return 0, clientv3.ContextError(ctx, err)
	}
	if resp.TTL <= 0 {
		return resp.GetHeader().GetRaftTerm(), rpctypes.ErrLeaseNotFound
	}
	return resp.GetHeader().GetRaftTerm(), nil
}
