package client

import (
	"path/filepath"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// serviceName is the Services entry under which a store node publishes
// its store address (store.ServiceName; the store's tests import this
// package, so it cannot import the store).
const serviceName = "kv"

// NodeEtcd returns the etcd configuration with which a clusterkit.Router
// follows a cluster that runs embedded etcd: endpoints (the members'
// client URLs, ClusterKit.EtcdEndpoints) and the client certificate a
// node keeps in dataDir/tls (node.crt, node.key, ca.crt). It suits a
// client on a node's machine; elsewhere, give the Router a client
// certificate signed by the cluster CA (or, on external etcd, the nodes'
// Etcd options).
func NodeEtcd(endpoints []string, dataDir string) clusterkit.EtcdConfig {
	dir := filepath.Join(dataDir, "tls")
	return clusterkit.EtcdConfig{Endpoints: endpoints, CertFile: filepath.Join(dir, "node.crt"),
		KeyFile: filepath.Join(dir, "node.key"), CAFile: filepath.Join(dir, "ca.crt")}
}

// route is the key → primary lookup of a Routed client: rt's map,
// which rt keeps current from etcd's watch. Safe for concurrent use.
type route struct{ rt *clusterkit.Router }

// primary returns the store address of key's primary and the partition's
// epoch in rt's map; "" when the map has none (no map yet, or a primary
// that publishes no store address).
func (r route) primary(key string) (addr string, epoch uint64) {
	p, err := r.rt.GetPartition(key)
	if err != nil {
		return "", 0
	}
	n := r.rt.GetPrimary(p)
	if n == nil {
		return "", 0
	}
	return n.Services[serviceName], p.Epoch
}
