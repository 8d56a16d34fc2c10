package clusterkit

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// keys is the etcd key layout of one cluster. Everything the nodes watch
// lives under root (/clusterkit/<cluster>/); the application's custom data
// lives under dataRoot (/clusterkit-data/<cluster>/), outside the watched
// prefix, so that writing it wakes no node.
type keys struct{ root, dataRoot string }

func newKeys(cluster string) keys {
	return keys{root: "/clusterkit/" + cluster + "/", dataRoot: "/clusterkit-data/" + cluster + "/"}
}

func (k keys) config() string           { return k.root + "config" }
func (k keys) membersPrefix() string    { return k.root + "members/" }
func (k keys) member(id string) string  { return k.membersPrefix() + id }
func (k keys) historyPrefix() string    { return k.root + "history/" }
func (k keys) history(id string) string { return k.historyPrefix() + id }
func (k keys) leaderPrefix() string     { return k.root + "leader/" }
func (k keys) assignment() string       { return k.root + "assignment" }
func (k keys) readyPrefix() string      { return k.root + "ready/" }
func (k keys) ready(id string) string   { return k.readyPrefix() + id }
func (k keys) failingPrefix() string    { return k.root + "handoffs/" }
func (k keys) failing(id string) string { return k.failingPrefix() + id }
func (k keys) rebalance() string        { return k.root + "rebalance" }
func (k keys) rebalanceRequest() string { return k.root + "rebalance-request" }
func (k keys) controlRequest(action controlAction) string {
	return k.root + "control-request/" + string(action)
}
func (k keys) controlRequestPrefix() string { return k.root + "control-request/" }
func (k keys) operatorPrefix() string       { return k.root + "operator/" }
func (k keys) operator(id string) string    { return k.operatorPrefix() + id }
func (k keys) dataPrefix() string           { return k.dataRoot }
func (k keys) data(key string) string       { return k.dataPrefix() + key }

// formatVersion is the version of the records below; a node refuses a
// cluster whose config has a newer one. Version 2 splits the partition map
// into parts (mapwire.go); a cluster of version 1 is migrated by its
// leader once every member reads version 2.
const formatVersion = mapFormat

// clusterConfig is written once, by the first node, and never changed.
type clusterConfig struct {
	FormatVersion     int    `json:"format_version"`
	PartitionCount    int    `json:"partition_count"`
	ReplicationFactor int    `json:"replication_factor"`
	Hash              string `json:"hash"`
}

// Member states carried in a member record. A node writes memberLeaving
// before it revokes its lease, and an admin removal writes memberRemoved
// before it deletes the key, so that every watcher can tell the reason of
// the delete that follows.
const (
	memberActive  = "active"
	memberLeaving = "leaving"
	memberRemoved = "removed"
)

// memberRecord is the value of members/<id>, bound to the node's lease.
type memberRecord struct {
	ID        string            `json:"id"`
	Addr      string            `json:"addr"`
	Zone      string            `json:"zone,omitempty"`
	Weight    float64           `json:"weight"`
	Services  map[string]string `json:"services,omitempty"`
	State     string            `json:"state"`
	Healthy   bool              `json:"healthy"`
	StartedAt time.Time         `json:"started_at"`
	Version   string            `json:"version"`
	// EtcdClientURL is the client URL of this node's embedded etcd member,
	// when it runs one.
	EtcdClientURL string `json:"etcd_client_url,omitempty"`
	// Incarnation identifies the process: drawn at random once per
	// ClusterKit (New), so a node that registers again after losing its
	// lease keeps it and a restarted process gets a new one.
	Incarnation int64 `json:"incarnation"`
	// Durable: the application declared that its data survives a restart
	// (Options.DurableStorage).
	Durable bool `json:"durable,omitempty"`
	// MapFormat is the newest partition-map format this node reads (0:
	// format 1 only, a node of an older version).
	MapFormat int `json:"map_format,omitempty"`
	// Lease is filled from the key's lease, not stored.
	Lease int64 `json:"-"`
}

func (m memberRecord) node() Node {
	status := NodeActive
	if !m.Healthy {
		status = NodeUnhealthy
	}
	return Node{
		ID: m.ID, Addr: m.Addr, IP: m.Addr, Zone: m.Zone, Weight: m.Weight, Services: m.Services,
		Status: status, Incarnation: m.Incarnation, StartedAt: m.StartedAt,
	}
}

// historyRecord is the value of history/<id>: what the leader saw of a node
// that left, kept so that its return is reported as a rejoin.
type historyRecord struct {
	Node memberRecord `json:"node"`
	// Incarnation is the process incarnation of the membership that ended.
	Incarnation int64       `json:"incarnation"`
	LastSeen    time.Time   `json:"last_seen"`
	Reason      LeaveReason `json:"reason"`
	Primaries   []int       `json:"primaries,omitempty"`
	Replicas    []int       `json:"replicas,omitempty"`
}

// rebalanceRecord is the value of rebalance: the current or last
// rebalance. It is written by the leader in the same Txn as the assignment
// that starts, extends or completes it.
type rebalanceRecord struct {
	ID            int64        `json:"id"`
	Trigger       ChangeReason `json:"trigger"`
	TriggerNodeID string       `json:"trigger_node,omitempty"`
	// RequestID is the manual request this rebalance serves, if any;
	// LastRequestID is the last manual request any rebalance served (it is
	// carried from record to record, so a request is served once).
	RequestID     string    `json:"request_id,omitempty"`
	LastRequestID string    `json:"last_request_id,omitempty"`
	Moves         int       `json:"moves"`
	NodesAffected []string  `json:"nodes_affected,omitempty"`
	StartedAt     time.Time `json:"started_at"`
	CompletedAt   time.Time `json:"completed_at,omitzero"`
}

func (r *rebalanceRecord) running() bool { return r != nil && r.CompletedAt.IsZero() }

func (r *rebalanceRecord) event() *RebalanceEvent {
	return &RebalanceEvent{
		ID: r.ID, Trigger: r.Trigger, TriggerNodeID: r.TriggerNodeID,
		PartitionsToMove: r.Moves, NodesAffected: slices.Clone(r.NodesAffected), Timestamp: r.StartedAt,
	}
}

// readyRecord is the value of ready/<id>: partition index → the assignment
// version at which this node became incoming for it ("since"). The leader
// only accepts an entry whose since matches the assignment's.
type readyRecord map[int]int64

// incoming is a node that is planned to serve a partition and is receiving
// its data since assignment version Since.
type incoming struct {
	Node  string
	Since int64
}

// partitionState is one partition of the assignment.
type partitionState struct {
	// Target is the planned ordered replica set (placement.Plan's output).
	Target []string
	// Serving is the ordered set that serves now; Serving[0] is the primary.
	Serving []string
	// Incoming are the Target nodes not yet serving.
	Incoming []incoming
	// Epoch grows whenever Serving changes.
	Epoch uint64
}

// assignment is the value of the assignment key, written by the leader only.
type assignment struct {
	Version    int64
	Partitions []partitionState
	// Planned records the nodes (id, zone, weight, incarnation) the
	// Targets were planned for, so a leader knows when membership changed:
	// the live members and the away ones whose slots are reserved.
	Planned []plannedNode
	// Maintenance, when set, freezes placement (see reconcile).
	Maintenance *maintenanceState
	// Served maps a control action to the ID of the last request of it
	// that the leader applied.
	Served map[controlAction]string
}

type plannedNode struct {
	ID     string  `json:"id"`
	Zone   string  `json:"zone,omitempty"`
	Weight float64 `json:"weight"`
	// Incarnation is the member's process incarnation: a new process is
	// planned anew (without Durable, the data it served counts as lost).
	Incarnation int64 `json:"inc,omitempty"`
	Durable     bool  `json:"durable,omitempty"`
	// Op is the operator's order (cordoned, draining) the Targets were
	// planned with; see drain_plan.go.
	Op NodeOperation `json:"op,omitempty"`
	// AwaySince, when set, is when the leader saw this node's lease
	// expire: it is not a member, its Target slots stay reserved until
	// AwaySince + RebalanceDelay (or while maintenance lasts).
	AwaySince time.Time `json:"away,omitzero"`
}

func (pn plannedNode) away() bool { return !pn.AwaySince.IsZero() }

// sameNode reports whether a and b are one node with the same placement
// attributes and process (whether away or not).
func sameNode(a, b plannedNode) bool {
	return a.ID == b.ID && a.Zone == b.Zone && a.Weight == b.Weight && a.Incarnation == b.Incarnation
}

// samePlacement reports whether two node lists plan alike: same IDs, zones
// and weights, in order (incarnations and absences aside).
func samePlacement(a, b []plannedNode) bool {
	return slices.EqualFunc(a, b, func(x, y plannedNode) bool { return x.ID == y.ID && x.Zone == y.Zone && x.Weight == y.Weight })
}

// maintenanceState is why and since when placement is frozen.
type maintenanceState struct {
	Since time.Time `json:"since"`
	// Manual: an operator turned it on (only an operator ends it);
	// otherwise many nodes left at once and it ends when they are back.
	Manual bool   `json:"manual,omitempty"`
	Reason string `json:"reason"`
}

// controlAction is an operator request the leader applies.
type controlAction string

const (
	actionEndDelay       controlAction = "end-delay"
	actionMaintenanceOn  controlAction = "maintenance-on"
	actionMaintenanceOff controlAction = "maintenance-off"
)

// controlRequest is the value of control-request/<action>.
type controlRequest struct {
	ID   string    `json:"id"`
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

// lostData returns the nodes planned in before that now run another
// process (incarnation reports the current one; ok false for a node that
// is not a member) and did not declare durable storage: the data they
// served counts as lost. restarted (if not nil) receives every node that
// runs another process, durable or not.
func lostData(before []plannedNode, incarnation func(id string) (inc int64, durable, ok bool), restarted map[string]bool) map[string]bool {
	var out map[string]bool
	for _, pn := range before {
		inc, durable, ok := incarnation(pn.ID)
		if !ok || pn.Incarnation == 0 || pn.Incarnation == inc {
			continue
		}
		if restarted != nil {
			restarted[pn.ID] = true
		}
		if durable {
			continue
		}
		if out == nil {
			out = map[string]bool{}
		}
		out[pn.ID] = true
	}
	return out
}

func (a *assignment) incomingCount() int {
	n := 0
	for _, p := range a.Partitions {
		n += len(p.Incoming)
	}
	return n
}

// The wire form of an assignment names nodes by index into a table, which
// keeps 16,384 partitions × RF 3 × 1,000 nodes near 0.5 MB (etcd's request
// limit is 1.5 MiB).
type wireAssignment struct {
	Version     int64                    `json:"v"`
	Nodes       []string                 `json:"nodes"`
	Planned     []plannedNode            `json:"planned"`
	Maintenance *maintenanceState        `json:"maint,omitempty"`
	Served      map[controlAction]string `json:"served,omitempty"`
	Partitions  []wirePartition          `json:"p"`
}

type wirePartition struct {
	Target  []int      `json:"t"`
	Serving []int      `json:"s"`
	In      [][2]int64 `json:"i,omitempty"` // (node index, since)
	Epoch   uint64     `json:"e"`
}

func (a *assignment) marshal() ([]byte, error) {
	table := map[string]int{}
	var names []string
	idx := func(id string) int {
		i, ok := table[id]
		if !ok {
			i = len(names)
			table[id] = i
			names = append(names, id)
		}
		return i
	}
	w := wireAssignment{Version: a.Version, Planned: a.Planned, Maintenance: a.Maintenance, Served: a.Served, Partitions: make([]wirePartition, len(a.Partitions))}
	for p, ps := range a.Partitions {
		wp := wirePartition{Epoch: ps.Epoch, Target: make([]int, len(ps.Target)), Serving: make([]int, len(ps.Serving))}
		for i, id := range ps.Target {
			wp.Target[i] = idx(id)
		}
		for i, id := range ps.Serving {
			wp.Serving[i] = idx(id)
		}
		for _, in := range ps.Incoming {
			wp.In = append(wp.In, [2]int64{int64(idx(in.Node)), in.Since})
		}
		w.Partitions[p] = wp
	}
	w.Nodes = names
	return json.Marshal(w)
}

func unmarshalAssignment(b []byte) (*assignment, error) {
	var w wireAssignment
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("decode assignment: %w", err)
	}
	name := func(i int64) (string, error) {
		if i < 0 || i >= int64(len(w.Nodes)) {
			return "", fmt.Errorf("decode assignment: node index %d out of range", i)
		}
		return w.Nodes[i], nil
	}
	names := func(ix []int) ([]string, error) {
		out := make([]string, len(ix))
		for i, x := range ix {
			n, err := name(int64(x))
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	a := &assignment{Version: w.Version, Planned: w.Planned, Maintenance: w.Maintenance, Served: w.Served, Partitions: make([]partitionState, len(w.Partitions))}
	for p, wp := range w.Partitions {
		var ps partitionState
		var err error
		if ps.Target, err = names(wp.Target); err != nil {
			return nil, err
		}
		if ps.Serving, err = names(wp.Serving); err != nil {
			return nil, err
		}
		for _, in := range wp.In {
			n, err := name(in[0])
			if err != nil {
				return nil, err
			}
			ps.Incoming = append(ps.Incoming, incoming{Node: n, Since: in[1]})
		}
		ps.Epoch = wp.Epoch
		a.Partitions[p] = ps
	}
	return a, nil
}

// readyRecord's JSON keys are partition indexes as strings.
func (r readyRecord) marshal() ([]byte, error) { return json.Marshal(map[int]int64(r)) }

func unmarshalReady(b []byte) (readyRecord, error) {
	m, err := unmarshalReadyMap(b)
	if err != nil {
		return nil, fmt.Errorf("decode ready record: %w", err)
	}
	return readyRecord(m), nil
}
