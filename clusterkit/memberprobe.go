package clusterkit

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Timing of the member probe.
const (
	probeInterval = time.Second
	probeTimeout  = time.Second
	// probeMisses is how many probes in a row an endpoint must leave
	// unanswered before the client avoids it.
	probeMisses = 2
)

// memberProbeLoop keeps this node's etcd client off members that do not
// answer: every probeInterval it asks each wanted endpoint for its status
// (over a connection of its own per endpoint, so it is not queued behind
// the client's requests), marks an endpoint down after probeMisses
// unanswered probes in a row and up at its first answer (endpointGuard,
// which cuts the client's connections to an endpoint marked down). A
// member frozen by SIGSTOP keeps its connections open, and a request or
// watch on them, a new leader's campaign among them, would hang until it
// resumes. A voter's node uses its own member alone, and a client of a
// single endpoint (an external etcd behind one address) has nowhere else
// to go: they probe nothing. It runs on the run's WaitGroup until the run
// ends, when the run's client dials through a connSet (r.conns).
func (r *run) memberProbeLoop() {
	p := &memberProbe{eps: r.eps, log: r.ck.log, metrics: r.ck.metrics, conns: map[string]*grpc.ClientConn{}, misses: map[string]int{}}
	defer p.close()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		p.round(r.ctx)
	}
}

// memberProbe is the state of memberProbeLoop, owned by its goroutine.
type memberProbe struct {
	eps     *endpointGuard
	log     *zap.Logger
	metrics *metrics
	conns   map[string]*grpc.ClientConn // by endpoint
	misses  map[string]int              // unanswered probes in a row, by endpoint
}

// round probes every wanted endpoint at once and marks them.
func (p *memberProbe) round(ctx context.Context) {
	want, _ := p.eps.wanted()
	for ep, c := range p.conns {
		if !slices.Contains(want, ep) {
			c.Close()
			delete(p.conns, ep)
			delete(p.misses, ep)
		}
	}
	if len(want) < 2 {
		p.metrics.unansweringMembers.Set(0)
		return // nothing to move requests to
	}
	answered := make([]bool, len(want))
	var wg sync.WaitGroup
	for i, ep := range want {
		c := p.conn(ep)
		if c == nil {
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			_, err := etcdserverpb.NewMaintenanceClient(c).Status(pctx, &etcdserverpb.StatusRequest{})
			answered[i] = err == nil
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	for i, ep := range want {
		if answered[i] {
			if p.misses[ep] >= probeMisses {
				p.log.Info("etcd member answers again; the client uses it", zap.String("endpoint", ep))
			}
			p.misses[ep] = 0
			p.eps.markUp(ep)
			continue
		}
		p.misses[ep]++
		if p.misses[ep] == probeMisses {
			p.log.Warn("etcd member does not answer; the client avoids it", zap.String("endpoint", ep),
				zap.Duration("for", probeMisses*probeInterval))
			p.eps.markDown(ep)
		}
	}
	_, down := p.eps.wanted()
	p.metrics.unansweringMembers.Set(float64(down))
}

// conn returns the probe's connection to ep, dialed on first use (nil if
// the dial fails: gRPC dials lazily, so only a malformed endpoint does).
func (p *memberProbe) conn(ep string) *grpc.ClientConn {
	if c := p.conns[ep]; c != nil {
		return c
	}
	c, err := p.eps.dial(ep)
	if err != nil {
		p.log.Debug("etcd member probe: dial failed", zap.String("endpoint", ep), zapErr(err))
		return nil
	}
	p.conns[ep] = c
	return c
}

func (p *memberProbe) close() {
	for _, c := range p.conns {
		c.Close()
	}
}
