package clusterkit

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (test
// with errors.Is) and add the operation and the offending value.
var (
	// ErrInvalidOptions: an Options field breaks its documented rule.
	ErrInvalidOptions = errors.New("clusterkit: invalid options")
	// ErrConfigMismatch: the cluster in etcd was created with a different
	// partition count, replication factor or hash than this node's options.
	ErrConfigMismatch = errors.New("clusterkit: cluster config mismatch")
	// ErrNodeIDInUse: another live process holds this NodeID.
	ErrNodeIDInUse = errors.New("clusterkit: node ID in use")
	// ErrNotStarted: the call needs a started node with a partition map.
	ErrNotStarted = errors.New("clusterkit: not started")
	// ErrStopped: the node was stopped.
	ErrStopped = errors.New("clusterkit: stopped")
	// ErrUnauthorized: a join or admin call lacked the cluster token, or
	// external etcd refused this node's user, password or permissions.
	ErrUnauthorized = errors.New("clusterkit: unauthorized")
	// ErrJoinFailed: joining through JoinAddr failed.
	ErrJoinFailed = errors.New("clusterkit: join failed")
	// ErrTLS: certificates or keys are missing, unreadable or do not
	// belong to the cluster.
	ErrTLS = errors.New("clusterkit: tls")
	// ErrInvalidKey: a custom-data key is empty, too long or malformed.
	ErrInvalidKey = errors.New("clusterkit: invalid key")
	// ErrValueTooLarge: a custom-data value exceeds MaxCustomDataSize.
	ErrValueTooLarge = errors.New("clusterkit: value too large")
	// ErrNotFound: no such custom-data key, partition or node.
	ErrNotFound = errors.New("clusterkit: not found")
	// ErrInvalidArgument: an operation's argument (a node ID, a node
	// spec of a plan preview, a partition) is malformed or out of range.
	ErrInvalidArgument = errors.New("clusterkit: invalid argument")
)
