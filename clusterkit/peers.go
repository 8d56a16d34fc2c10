package clusterkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// peersRefresh is how often a node in embedded mode records the etcd
// client URLs its client knows (kept up to date by the client's auto-sync).
const peersRefresh = 5 * time.Second

// Recorded peers: a node in embedded mode keeps the client URLs of its
// cluster's etcd members in DataDir. A node that was a member of a cluster
// once must never bootstrap a new one: restarted without data (its member
// removed itself on a graceful Stop, or it was a plain client) and without
// JoinAddr (the bootstrap node) it rejoins through these, and with a
// JoinAddr that does not answer it tries them too.

// peersFile is where the recorded peers are kept.
func (o *Options) peersFile() string {
	return filepath.Join(o.DataDir, "etcd-peers-"+o.ClusterName)
}

// recordedPeers returns the recorded client URLs; nil when there are none.
func recordedPeers(o *Options) ([]string, error) {
	b, err := os.ReadFile(o.peersFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("clusterkit: read recorded etcd peers: %w", err)
	}
	var urls []string
	if err := json.Unmarshal(b, &urls); err != nil {
		return nil, fmt.Errorf("clusterkit: recorded etcd peers %s: %w", o.peersFile(), err)
	}
	return urls, nil
}

// recordPeers replaces the recorded client URLs with urls (atomically:
// written to a temporary file and renamed). An empty list is not recorded.
func recordPeers(o *Options, urls []string) error {
	if len(urls) == 0 {
		return nil
	}
	urls = slices.Compact(slices.Sorted(slices.Values(urls)))
	b, _ := json.Marshal(urls)
	if old, err := os.ReadFile(o.peersFile()); err == nil && string(old) == string(b) {
		return nil
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("clusterkit: record etcd peers: %w", err)
	}
	tmp := o.peersFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("clusterkit: record etcd peers: %w", err)
	}
	if err := os.Rename(tmp, o.peersFile()); err != nil {
		return fmt.Errorf("clusterkit: record etcd peers: %w", err)
	}
	return nil
}

// recordPeersLoop records the client's etcd endpoints now and every
// peersRefresh until the run ends. It runs on the run's WaitGroup.
func (r *run) recordPeersLoop() {
	t := time.NewTicker(peersRefresh)
	defer t.Stop()
	for {
		if err := recordPeers(&r.ck.opts, r.cli.Endpoints()); err != nil {
			r.ck.log.Warn("recording etcd peers failed", zapErr(err))
		}
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// joinEndpoints finds the etcd client URLs of the cluster this node joins:
// through JoinAddr's join endpoint, or through the recorded peers when
// JoinAddr is empty or does not answer. It returns nil, nil when there is
// neither (the first start of a bootstrap node).
func (r *run) joinEndpoints(ctx context.Context) ([]string, error) {
	o := &r.ck.opts
	peers, perr := recordedPeers(o)
	// In secure mode the recorded peers are of no use without a
	// certificate, which only the join call brings.
	usable := len(peers) > 0 && (!o.secure() || r.tls != nil)
	if o.JoinAddr == "" {
		if perr != nil || len(peers) == 0 {
			return nil, perr
		}
		if !usable {
			return nil, fmt.Errorf("%w: %w: this node has no certificate in %s to rejoin its cluster with; set JoinAddr and ClusterToken",
				ErrJoinFailed, ErrTLS, tlsDir(o))
		}
		return peers, nil
	}
	endpoints, err := r.requestJoin(ctx)
	if err == nil || !usable || errors.As(err, new(joinRefused)) || ctx.Err() != nil {
		return endpoints, err
	}
	r.ck.log.Warn("JoinAddr does not answer; joining through the recorded etcd peers", zapErr(err))
	return peers, nil
}
