package clusterkit

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// memberJSON is a member as the HTTP API shows it.
type memberJSON struct {
	ID      string  `json:"id"`
	Address string  `json:"address"`
	Zone    string  `json:"zone"`
	Weight  float64 `json:"weight"`
	// Services is {} when the node publishes none.
	Services map[string]string `json:"services"`
	// State is active, unhealthy, or offline (a node the map still names
	// after it left; it has no address then).
	State string `json:"state"`
	// EtcdRole is the node's embedded etcd member: voter, learner or none
	// (a plain client, or external etcd).
	EtcdRole    string    `json:"etcd_role"`
	Incarnation int64     `json:"incarnation"`
	Started     time.Time `json:"started,omitzero"`
}

func memberOf(n *Node) memberJSON {
	services := n.Services
	if services == nil {
		services = map[string]string{}
	}
	return memberJSON{ID: n.ID, Address: n.Addr, Zone: n.Zone, Weight: n.Weight, Services: services,
		State: n.Status, Incarnation: n.Incarnation, Started: n.StartedAt}
}

// clusterJSON is the body of GET /cluster.
type clusterJSON struct {
	Name              string `json:"name"`
	Node              string `json:"node"`
	Leader            string `json:"leader"`
	PartitionCount    int    `json:"partition_count"`
	ReplicationFactor int    `json:"replication_factor"`
	AssignmentVersion int64  `json:"assignment_version"`
	// MembershipRevision is the etcd revision of the last member change
	// this node saw.
	MembershipRevision int64    `json:"membership_revision"`
	Settled            bool     `json:"settled"`
	Maintenance        string   `json:"maintenance,omitempty"`
	AwayNodes          []string `json:"away_nodes,omitempty"`
	// Operations are the nodes under an operator's order, with a drain's
	// progress.
	Operations []NodeOperationStatus `json:"operations,omitempty"`
	// Rebalance is the current or last rebalance, with its progress.
	Rebalance  *RebalanceStatus `json:"rebalance,omitempty"`
	Members    []memberJSON     `json:"members"`
	Partitions []Partition      `json:"partitions"`
}

// partitionJSON is the body of GET /partitions/{id} and GET
// /partitions?key=K: the partition's fields, its serving nodes (primary
// first) and, for a key lookup, the key.
type partitionJSON struct {
	Partition
	Key               *string      `json:"key,omitempty"`
	Nodes             []memberJSON `json:"nodes"`
	AssignmentVersion int64        `json:"assignment_version"`
}

// partitionsJSON is the body of GET /partitions.
type partitionsJSON struct {
	AssignmentVersion int64       `json:"assignment_version"`
	Partitions        []Partition `json:"partitions"`
}

// readyJSON is the body of GET /ready.
type readyJSON struct {
	Ready             bool     `json:"ready"`
	Node              string   `json:"node"`
	AssignmentVersion int64    `json:"assignment_version"`
	Reasons           []string `json:"reasons,omitempty"`
	Error             string   `json:"error,omitempty"`
}

// healthJSON is the body of GET /health/detailed.
type healthJSON struct {
	Node string `json:"node"`
	*HealthStatus
	// Error repeats the reasons when the status is critical (503).
	Error string `json:"error,omitempty"`
}

// handleCluster serves the cluster as this node sees it. The ETag is the
// assignment version, the membership revision and a hash of the body, so
// an unchanged view is answered 304 to a matching If-None-Match and a
// changed one never is.
func (ck *ClusterKit) handleCluster(w http.ResponseWriter, r *http.Request) {
	s, ops, rb := ck.clusterState()
	c := clusterJSON{
		Name: ck.opts.ClusterName, Node: ck.opts.NodeID, Leader: s.leader,
		PartitionCount: ck.opts.PartitionCount, ReplicationFactor: ck.opts.ReplicationFactor,
		AssignmentVersion: s.version, MembershipRevision: s.membershipRev, Settled: s.settled,
		Maintenance: s.maintenance, AwayNodes: s.away, Operations: ops,
		Members: make([]memberJSON, len(s.members)), Partitions: s.partitionList(),
	}
	roles := ck.etcdRoles()
	for i := range s.members {
		c.Members[i] = memberOf(&s.members[i])
		c.Members[i].EtcdRole = cmp.Or(roles[s.members[i].ID], "none")
	}
	c.Rebalance = rb
	if c.Partitions == nil {
		c.Partitions = []Partition{}
	}
	var body bytes.Buffer
	if err := json.NewEncoder(&body).Encode(c); err != nil {
		writeError(w, http.StatusInternalServerError, "encode cluster: "+err.Error())
		return
	}
	h := fnv.New64a()
	h.Write(body.Bytes())
	etag := fmt.Sprintf(`"%d-%d-%016x"`, s.version, s.membershipRev, h.Sum64())
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if etagMatches(strings.Join(r.Header.Values("If-None-Match"), ","), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(body.Bytes())
}

// etagMatches reports whether an If-None-Match header value lists etag
// (weak comparison, as RFC 9110 prescribes for If-None-Match) or is "*".
func etagMatches(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		t := strings.TrimSpace(part)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// handlePartitions serves GET /partitions: every partition, or with
// ?key=K the partition key K maps to and its nodes.
func (ck *ClusterKit) handlePartitions(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "malformed query: "+err.Error())
		return
	}
	for name := range q {
		if name != "key" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q (only key is accepted)", name))
			return
		}
	}
	keys, byKey := q["key"]
	if len(keys) > 1 {
		writeError(w, http.StatusBadRequest, "give at most one key")
		return
	}
	s := ck.snap.Load()
	if s.count == 0 {
		writeError(w, http.StatusServiceUnavailable, "this node holds no partition map yet")
		return
	}
	if !byKey {
		writeJSON(w, http.StatusOK, partitionsJSON{AssignmentVersion: s.version, Partitions: s.partitionList()})
		return
	}
	p := s.partitionOf(keys[0])
	writeJSON(w, http.StatusOK, partitionView(s, p.Index, &keys[0]))
}

// handlePartition serves GET /partitions/{id}; id is "partition-<n>" or
// "<n>".
func (ck *ClusterKit) handlePartition(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s := ck.snap.Load()
	if s.count == 0 {
		writeError(w, http.StatusServiceUnavailable, "this node holds no partition map yet")
		return
	}
	i, ok := parsePartitionID(id, s.count)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no partition %q: use partition-<n> or <n> with 0 ≤ n < %d", id, s.count))
		return
	}
	writeJSON(w, http.StatusOK, partitionView(s, i, nil))
}

// parsePartitionID accepts the canonical "partition-<n>" or "<n>".
func parsePartitionID(id string, count int) (int, bool) {
	num := strings.TrimPrefix(id, "partition-")
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || i >= count || strconv.Itoa(i) != num {
		return 0, false
	}
	return i, true
}

func partitionView(s *snapshot, i int, key *string) partitionJSON {
	nodes := s.servingAt(i)
	out := partitionJSON{Partition: *s.part(i), Key: key, AssignmentVersion: s.version,
		Nodes: make([]memberJSON, len(nodes))}
	for j := range nodes {
		out.Nodes[j] = memberOf(&nodes[j])
	}
	return out
}

// handleHealth is liveness: 200 while the process serves HTTP.
func (ck *ClusterKit) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": ck.opts.NodeID})
}

// handleReady answers 200 once this node is registered, holds a partition
// map and is in touch with etcd, 503 with the reasons otherwise.
func (ck *ClusterKit) handleReady(w http.ResponseWriter, r *http.Request) {
	s := ck.snap.Load()
	out := readyJSON{Node: ck.opts.NodeID, AssignmentVersion: s.version, Reasons: ck.notReady(s)}
	if len(out.Reasons) > 0 {
		out.Error = "not ready: " + strings.Join(out.Reasons, "; ")
		writeJSON(w, http.StatusServiceUnavailable, out)
		return
	}
	out.Ready = true
	writeJSON(w, http.StatusOK, out)
}

// notReady lists why this node is not ready; empty when it is.
func (ck *ClusterKit) notReady(s *snapshot) []string {
	r := ck.active.Load()
	if r == nil {
		return []string{"not started"}
	}
	if r.ctx.Err() != nil || r.leaving.Load() {
		return []string{"stopping"}
	}
	var reasons []string
	if reg := r.reg.Load(); reg == nil {
		reasons = append(reasons, "not registered")
	} else {
		select {
		case <-reg.Done():
			reasons = append(reasons, "membership lost")
		default:
		}
	}
	if !ck.etcdConnected() {
		reasons = append(reasons, "not connected to etcd")
	}
	if s.count == 0 {
		reasons = append(reasons, "no partition map yet")
	}
	return reasons
}

// handleHealthDetailed serves HealthCheck: 200 while healthy or degraded,
// 503 when critical.
func (ck *ClusterKit) handleHealthDetailed(w http.ResponseWriter, r *http.Request) {
	h := ck.HealthCheck()
	out := healthJSON{Node: ck.opts.NodeID, HealthStatus: h}
	status := http.StatusOK
	if h.Status == HealthCritical {
		status = http.StatusServiceUnavailable
		out.Error = "cluster critical: " + strings.Join(h.Reasons, "; ")
	}
	writeJSON(w, status, out)
}
