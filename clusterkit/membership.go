package clusterkit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/leases"
)

// register creates this node's member record, proving with the saved
// incarnation that a not-yet-expired old record is its own.
func (r *run) register(ctx context.Context) error {
	ck := r.ck
	o := &ck.opts
	r.mu.Lock()
	healthy := r.wantHealthy
	r.mu.Unlock()
	rec := memberRecord{ID: o.NodeID, Addr: r.advertiseAddr(), Zone: o.Zone, Weight: o.Weight,
		Services: o.Services, State: memberActive, Healthy: healthy, StartedAt: time.Now().UTC(), Version: version, MapFormat: mapFormat,
		Incarnation: ck.incarnation, Durable: o.DurableStorage}
	if m := r.member.Load(); m != nil {
		rec.EtcdClientURL = m.ClientURL()
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	inc := incarnationFileOf(o)
	opts := []leases.Option{leases.WithLogger(ck.log), leases.WithDialer(r.eps.dial)}
	if prev, ok := inc.load(); ok {
		opts = append(opts, leases.WithPreviousLease(prev))
	}
	reg, err := leases.Register(ctx, r.cli, ck.keys.member(o.NodeID), b, o.LeaseTTL, opts...)
	switch {
	case errors.Is(err, leases.ErrKeyInUse):
		return fmt.Errorf("%w: %q is held by a live process: %v", ErrNodeIDInUse, o.NodeID, err)
	case errors.Is(err, leases.ErrInvalidTTL):
		return fmt.Errorf("%w: LeaseTTL %v: %v", ErrInvalidOptions, o.LeaseTTL, err)
	case err != nil:
		ck.metrics.etcdErrors.WithLabelValues("register").Inc()
		return fmt.Errorf("clusterkit: register %q: %w", o.NodeID, err)
	}
	rec.Lease = int64(reg.LeaseID())
	r.mu.Lock()
	r.record = rec
	r.publishedHealthy = healthy
	r.mu.Unlock()
	r.ready.newLease() // the old ready record went with the old lease
	r.reg.Store(reg)
	if err := inc.save(reg.LeaseID()); err != nil {
		ck.log.Warn("cannot save incarnation; a restart within LeaseTTL will wait for the old lease", zapErr(err))
	}
	return nil
}

// newIncarnation draws a process incarnation: random, positive, 63 bits.
func newIncarnation() int64 {
	var b [8]byte
	rand.Read(b[:])
	if v := int64(binary.BigEndian.Uint64(b[:]) >> 1); v != 0 {
		return v
	}
	return 1
}

// updateRecord writes rec as this node's member record on reg's lease.
func updateRecord(ctx context.Context, reg *leases.Registration, rec memberRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return reg.Update(ctx, b)
}

// incarnationFile holds the lease ID of this node's last registration,
// the proof that lets a restarted process take its own record over at once.
type incarnationFile string

func incarnationFileOf(o *Options) incarnationFile {
	return incarnationFile(filepath.Join(o.DataDir, "incarnation-"+o.ClusterName))
}

func (f incarnationFile) load() (clientv3.LeaseID, bool) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return 0, false
	}
	id, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || id == 0 {
		return 0, false
	}
	return clientv3.LeaseID(id), true
}

func (f incarnationFile) save(id clientv3.LeaseID) error {
	if err := os.MkdirAll(filepath.Dir(string(f)), 0o700); err != nil {
		return err
	}
	tmp := string(f) + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(int64(id), 10)), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, string(f))
}

// membershipLoop campaigns for leadership while the membership lasts, and
// registers again after a loss, unless an admin removed this node or the
// run ends. A process is not its lease: registering again keeps the
// process incarnation, so the others know this node kept its data.
func (r *run) membershipLoop() {
	for {
		reg := r.reg.Load()
		r.campaignWhileMember(reg)
		if r.ctx.Err() != nil || r.leaving.Load() {
			return
		}
		r.ck.metrics.keepAliveFailures.Inc()
		if r.wasRemoved() {
			r.ck.log.Warn("removed from the cluster by an admin; not registering again", zapErr(reg.Err()))
			return
		}
		r.ck.log.Warn("membership lost; registering again", zapErr(reg.Err()))
		if !r.registerAgain() {
			return
		}
		r.reregisteredAt.Store(time.Now().UnixNano())
	}
}

// campaignWhileMember campaigns and leads until reg ends or the run ends.
func (r *run) campaignWhileMember(reg *leases.Registration) {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	r.wg.Go(func() {
		select {
		case <-reg.Done():
			cancel()
		case <-ctx.Done():
		}
	})
	r.campaignLoop(ctx, reg)
}

// registerAtStart registers for Start, retrying while etcd does not answer
// in time (a request timeout: etcd electing a leader, or slow while a
// whole cluster restarts at once) until ctx ends; any other error ends
// Start at once.
func (r *run) registerAtStart(ctx context.Context) error {
	b := newBackoff(100*time.Millisecond, time.Second)
	for {
		err := r.register(ctx)
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		r.ck.log.Warn("registering timed out; retrying", zapErr(err))
		if !b.wait(ctx) {
			return err
		}
	}
}

// registerAgain registers until it succeeds (true) or the run ends or
// teardown begins (false; teardown closes a registration made meanwhile).
// It tries at least every second: when etcd comes back, the old record is
// kept for about one TTL, and taking it over in time is what keeps the
// others from seeing this node leave at all.
func (r *run) registerAgain() bool {
	b := newBackoff(100*time.Millisecond, time.Second)
	for {
		ctx, cancel := context.WithTimeout(r.ctx, r.ck.opts.LeaseTTL+2*requestTimeout)
		err := r.register(ctx)
		cancel()
		if err == nil {
			return !r.leaving.Load()
		}
		r.ck.log.Warn("register again failed", zapErr(err))
		if !b.wait(r.ctx) {
			return false
		}
	}
}

// wasRemoved reports whether an admin removed this node: the last member
// record seen for it said so. The lease can report the delete before the
// watch delivers it, so it waits up to 2 s for the view to lose the member.
func (r *run) wasRemoved() bool {
	r.mu.Lock()
	removed := r.removed
	r.mu.Unlock()
	if removed {
		return true
	}
	me := r.ck.opts.NodeID
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
	defer cancel()
	r.follower.waitFor(ctx, func(v *view) bool {
		_, member := v.members[me]
		removed = v.departed[me].Reason == LeaveRemovedByAdmin
		return !member
	})
	if removed {
		r.mu.Lock()
		r.removed = true
		r.mu.Unlock()
	}
	return removed
}

// publishHealth writes the probe's verdict into this node's member record
// when the record says otherwise.
func (r *run) publishHealth() {
	r.mu.Lock()
	if r.wantHealthy == r.publishedHealthy || r.record.State != memberActive {
		r.mu.Unlock()
		return
	}
	r.record.Healthy = r.wantHealthy
	rec := r.record
	r.mu.Unlock()
	reg := r.reg.Load()
	ctx, cancel := context.WithTimeout(r.ctx, requestTimeout)
	defer cancel()
	if err := updateRecord(ctx, reg, rec); err != nil {
		r.ck.metrics.etcdErrors.WithLabelValues("member_update").Inc()
		r.ck.log.Warn("publish health failed", zapErr(err))
		return
	}
	r.mu.Lock()
	if r.reg.Load() == reg {
		r.publishedHealthy = rec.Healthy
	}
	r.mu.Unlock()
	r.ck.log.Info("node health changed", zap.Bool("healthy", rec.Healthy))
}
