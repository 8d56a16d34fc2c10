package clusterkit

import "google.golang.org/grpc"

// AssignmentKey returns the etcd key of cluster's partition map.
func AssignmentKey(cluster string) string { return newKeys(cluster).assignment() }

// IncomingOf decodes a partition map value and returns its version and
// its incoming handoffs: in total and per receiving node.
func IncomingOf(b []byte) (version int64, total int, perNode map[string]int, err error) {
	a, err := unmarshalAssignment(b)
	if err != nil {
		return 0, 0, nil, err
	}
	perNode = map[string]int{}
	for _, p := range a.Partitions {
		for _, in := range p.Incoming {
			perNode[in.Node]++
			total++
		}
	}
	return a.Version, total, perNode, nil
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
