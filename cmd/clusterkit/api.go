package main

import (
	"slices"
	"time"
)

// The JSON the nodes' HTTP API answers (the clusterkit package's
// http_views.go). The CLI decodes the API into its own copy of these wire
// types, the API's contract as a client sees it; its tests run it against
// real nodes, which keeps the copy honest. Etcd mode fills the same types
// from a clusterkit.Router (etcdmode.go), so both modes print alike.

type member struct {
	ID          string            `json:"id"`
	Address     string            `json:"address"`
	Zone        string            `json:"zone"`
	Weight      float64           `json:"weight"`
	Services    map[string]string `json:"services"`
	State       string            `json:"state"`
	Incarnation int64             `json:"incarnation"`
	Started     time.Time         `json:"started,omitzero"`
}

type partition struct {
	ID       string   `json:"id"`
	Index    int      `json:"index"`
	Primary  string   `json:"primary"`
	Replicas []string `json:"replicas"`
	Incoming []string `json:"incoming"`
	Epoch    uint64   `json:"epoch"`
}

// clusterView is the body of GET /cluster.
type clusterView struct {
	Name               string          `json:"name"`
	Node               string          `json:"node"`
	Leader             string          `json:"leader"`
	PartitionCount     int             `json:"partition_count"`
	ReplicationFactor  int             `json:"replication_factor"`
	AssignmentVersion  int64           `json:"assignment_version"`
	MembershipRevision int64           `json:"membership_revision"`
	Settled            bool            `json:"settled"`
	Maintenance        string          `json:"maintenance,omitempty"`
	Operations         []nodeOperation `json:"operations,omitempty"`
	Members            []member        `json:"members"`
	Partitions         []partition     `json:"partitions"`
}

// partitionView is the body of GET /partitions?key=K.
type partitionView struct {
	partition
	Key               *string  `json:"key,omitempty"`
	Nodes             []member `json:"nodes"`
	AssignmentVersion int64    `json:"assignment_version"`
}

// healthView is the body of GET /health/detailed.
type healthView struct {
	Node                     string    `json:"node"`
	Status                   string    `json:"status"`
	Reasons                  []string  `json:"reasons,omitempty"`
	EtcdConnected            bool      `json:"etcd_connected"`
	Registered               bool      `json:"registered"`
	TotalNodes               int       `json:"total_nodes"`
	HealthyNodes             int       `json:"healthy_nodes"`
	UnhealthyNodeIDs         []string  `json:"unhealthy_node_ids,omitempty"`
	UnderReplicated          int       `json:"under_replicated_partitions"`
	PartitionsWithoutReplica int       `json:"partitions_without_replica"`
	PendingHandoffs          int       `json:"pending_handoffs"`
	FailedHandoffs           int       `json:"failed_handoffs"`
	CheckedAt                time.Time `json:"checked_at"`
}

// holding counts what one node holds.
type holding struct {
	Primaries int `json:"primaries"`
	Replicas  int `json:"replicas"`
	Incoming  int `json:"incoming"`
}

// holdings counts, per node ID, the partitions it serves as primary or
// replica and those it is receiving.
func (v *clusterView) holdings() map[string]holding {
	h := map[string]holding{}
	for _, p := range v.Partitions {
		if p.Primary != "" {
			x := h[p.Primary]
			x.Primaries++
			h[p.Primary] = x
		}
		for _, id := range p.Replicas {
			x := h[id]
			x.Replicas++
			h[id] = x
		}
		for _, id := range p.Incoming {
			x := h[id]
			x.Incoming++
			h[id] = x
		}
	}
	return h
}

// role is what node is for partition p: primary, replica, incoming or "".
func (p *partition) role(node string) string {
	switch {
	case p.Primary == node:
		return "primary"
	case slices.Contains(p.Replicas, node):
		return "replica"
	case slices.Contains(p.Incoming, node):
		return "incoming"
	}
	return ""
}
