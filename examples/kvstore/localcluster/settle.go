package localcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// View is the part of a node's GET /cluster that WaitSettled reads.
type View struct {
	Leader            string `json:"leader"`
	AssignmentVersion int64  `json:"assignment_version"`
	Settled           bool   `json:"settled"`
	Members           []struct {
		ID string `json:"id"`
		// EtcdRole is the node's embedded etcd member: voter, learner
		// or none.
		EtcdRole string `json:"etcd_role"`
	} `json:"members"`
	Partitions []struct {
		Index    int      `json:"index"`
		Primary  string   `json:"primary"`
		Replicas []string `json:"replicas"`
		Incoming []string `json:"incoming"`
		Epoch    uint64   `json:"epoch"`
	} `json:"partitions"`
}

var viewClient = &http.Client{Timeout: time.Second}

// ReadView returns node n's view of the cluster.
func (n *Node) ReadView(ctx context.Context) (*View, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTP+"/cluster", nil)
	if err != nil {
		return nil, err
	}
	resp, err := viewClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: GET /cluster: %s", n.ID, resp.Status)
	}
	var v View
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, err
	}
	return &v, nil
}

// WaitSettled returns once every running, unfrozen node holds the same
// settled map (no partition receiving data) with exactly those nodes as
// members, and returns that map.
func (c *Cluster) WaitSettled(ctx context.Context) (*View, error) {
	var last string
	for {
		v, why := c.agreed(ctx)
		if why == "" {
			return v, nil
		}
		last = why
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("localcluster: the cluster did not settle: %s: %w", last, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// agreed returns the common settled view, or why there is none.
func (c *Cluster) agreed(ctx context.Context) (*View, string) {
	var nodes []*Node
	for _, n := range c.Running() {
		if !n.Frozen() {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return nil, "no node runs"
	}
	var first *View
	for _, n := range nodes {
		v, err := n.ReadView(ctx)
		switch {
		case err != nil:
			return nil, err.Error()
		case !v.Settled:
			return nil, n.ID + " is not settled"
		case len(v.Members) != len(nodes):
			return nil, fmt.Sprintf("%s sees %d members, %d run", n.ID, len(v.Members), len(nodes))
		case first != nil && v.AssignmentVersion != first.AssignmentVersion:
			return nil, fmt.Sprintf("%s holds map %d, %s map %d", n.ID, v.AssignmentVersion, nodes[0].ID, first.AssignmentVersion)
		}
		if first == nil {
			first = v
		}
	}
	return first, ""
}

// WaitFailedOver returns once every running, unfrozen node's map names a
// primary other than id for every partition: the replicas of a departed
// node have taken over, whether or not its replica slots were re-placed
// yet (ClusterKit holds them for Options.RebalanceDelay).
func (c *Cluster) WaitFailedOver(ctx context.Context, id string) error {
	for {
		done := true
		for _, n := range c.Running() {
			if n.Frozen() {
				continue
			}
			v, err := n.ReadView(ctx)
			if err != nil {
				done = false
				break
			}
			for _, p := range v.Partitions {
				if p.Primary == "" || p.Primary == id {
					done = false
					break
				}
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localcluster: %s's partitions never failed over: %w", id, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
