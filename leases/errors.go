package leases

import "errors"

// Errors returned by this package, wrapped with the operation and the key;
// test them with errors.Is.
var (
	// ErrInvalidArgument reports bad input to Register or an Option: a nil
	// client, an empty key, a non-positive request timeout.
	ErrInvalidArgument = errors.New("leases: invalid argument")

	// ErrInvalidTTL reports a TTL that is not a whole number of seconds, is
	// below one second, is below the etcd server's minimum lease TTL (etcd
	// would raise it silently; its minimum is 1.5 × its election timeout,
	// 2 s with default settings) or above its maximum.
	ErrInvalidTTL = errors.New("leases: invalid TTL")

	// ErrKeyInUse means the key is held by another live lease (a duplicate
	// node ID), or exists without a lease.
	ErrKeyInUse = errors.New("leases: key in use")

	// ErrLeaseLost means the lease expired, was revoked by someone else, or
	// could not be renewed before its estimated expiry.
	ErrLeaseLost = errors.New("leases: lease lost")

	// ErrKeyDeleted means someone else deleted the key while the lease was
	// still alive.
	ErrKeyDeleted = errors.New("leases: key deleted by someone else")

	// ErrKeyReplaced means the key was rebound to another lease, for example
	// by a takeover with WithPreviousLease.
	ErrKeyReplaced = errors.New("leases: key replaced by another lease")

	// ErrClosed is returned by Update after Close or Abandon.
	ErrClosed = errors.New("leases: registration closed")
)
