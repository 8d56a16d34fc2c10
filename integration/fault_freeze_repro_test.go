//go:build faultrepro

package integration

import (
	"testing"
	"time"
)

// TestFrozenVoter freezes a node that hosts an etcd voter for 2×TTL: the
// other nodes must keep their membership (issue 9). It fails on the code
// before the fix: healthy nodes' keep-alives wait on the frozen member's
// connection until their leases lapse.
func TestFrozenVoter(t *testing.T) {
	const ttl = 2 * time.Second
	c, nodes := formFour(t, ttl)
	victim := nodes[1]
	res := freezeFor(t, c, nodes, victim, 2*ttl)
	checkFreeze(t, res, victim)
}
