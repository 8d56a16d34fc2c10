package placement

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them, so
// callers test with errors.Is; the wrapping message names the offending
// argument and value.
var (
	// ErrInvalidInput reports an argument of Plan that breaks its contract:
	// a partition count outside [1, MaxPartitions], a replication factor
	// below 1, no nodes, an empty or duplicate node ID, a negative, NaN or
	// infinite weight, more than MaxReplicaSlots replica slots, or a
	// previous assignment whose partition count differs from the requested
	// one.
	ErrInvalidInput = errors.New("placement: invalid input")
)
