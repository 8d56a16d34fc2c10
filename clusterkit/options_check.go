package clusterkit

// Validation of Options and the defaults New fills in.

import (
	"fmt"
	"math"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"go.uber.org/zap"
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// invalid formats an option error that names the field, the rule and the
// value, and wraps ErrInvalidOptions.
func invalid(field, rule string, value any) error {
	return fmt.Errorf("%w: %s %s, got %q", ErrInvalidOptions, field, rule, fmt.Sprint(value))
}

// withDefaults validates o and returns a copy with every default filled in.
func (o Options) withDefaults() (Options, error) {
	for _, step := range []func() error{o.checkAddrs, o.layoutDefaults, o.healthDefaults, o.etcdDefaults, o.embeddedDefaults, o.moveDefaults, o.checkSecurity} {
		if err := step(); err != nil {
			return o, err
		}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o, nil
}

// checkAddrs checks NodeID and the addresses.
func (o *Options) checkAddrs() error {
	if o.NodeID == "" || len(o.NodeID) > 128 || !namePattern.MatchString(o.NodeID) {
		return invalid("NodeID", "must be 1 to 128 characters of [A-Za-z0-9._-]", o.NodeID)
	}
	if err := checkHostPort("HTTPAddr", o.HTTPAddr, true); err != nil {
		return err
	}
	if o.AdvertiseAddr != "" {
		if err := checkHostPort("AdvertiseAddr", o.AdvertiseAddr, false); err != nil {
			return err
		}
	}
	if o.JoinAddr != "" {
		if err := checkHostPort("JoinAddr", o.JoinAddr, false); err != nil {
			return err
		}
	}
	return nil
}

// layoutDefaults fills and checks the partitioning, names, data dir, weight and services.
func (o *Options) layoutDefaults() error {
	if o.PartitionCount == 0 {
		o.PartitionCount = DefaultPartitionCount
	}
	if o.PartitionCount < 1 || o.PartitionCount > MaxPartitionCount {
		return invalid("PartitionCount", fmt.Sprintf("must be between 1 and %d", MaxPartitionCount), o.PartitionCount)
	}
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = DefaultReplicationFactor
	}
	if o.ReplicationFactor < 1 || o.ReplicationFactor > 64 {
		return invalid("ReplicationFactor", "must be between 1 and 64", o.ReplicationFactor)
	}
	if o.ClusterName == "" {
		o.ClusterName = DefaultClusterName
	}
	if len(o.ClusterName) > 64 || !namePattern.MatchString(o.ClusterName) {
		return invalid("ClusterName", "must be 1 to 64 characters of [A-Za-z0-9._-]", o.ClusterName)
	}
	if o.DataDir == "" {
		o.DataDir = filepath.Join(DefaultDataDirRoot, o.NodeID)
	}
	if math.IsNaN(o.Weight) || math.IsInf(o.Weight, 0) || o.Weight < 0 {
		return invalid("Weight", "must be a finite number ≥ 0", o.Weight)
	}
	if o.Weight == 0 {
		o.Weight = 1
	}
	for name, addr := range o.Services {
		if name == "" {
			return invalid("Services", "must not have an empty service name", addr)
		}
	}
	if o.HookConcurrency == 0 {
		o.HookConcurrency = DefaultHookConcurrency
	}
	if o.HookConcurrency < 1 {
		return invalid("HookConcurrency", "must be at least 1", o.HookConcurrency)
	}
	return nil
}

// healthDefaults fills and checks HealthCheck and LeaseTTL.
func (o *Options) healthDefaults() error {
	hc := &o.HealthCheck
	if hc.Interval < 0 || hc.Timeout < 0 || hc.FailureThreshold < 0 {
		return invalid("HealthCheck", "Interval, Timeout and FailureThreshold must not be negative",
			fmt.Sprintf("%v/%v/%d", hc.Interval, hc.Timeout, hc.FailureThreshold))
	}
	if hc.Interval == 0 {
		hc.Interval = DefaultHealthInterval
	}
	if hc.Timeout == 0 {
		hc.Timeout = min(DefaultHealthTimeout, hc.Interval)
	}
	if hc.Timeout > hc.Interval {
		return invalid("HealthCheck.Timeout", fmt.Sprintf("must not exceed HealthCheck.Interval (%v)", hc.Interval), hc.Timeout)
	}
	if hc.FailureThreshold == 0 {
		hc.FailureThreshold = DefaultFailureThreshold
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = DefaultLeaseTTL
		if hc.Enabled {
			ttl := hc.Interval * time.Duration(hc.FailureThreshold)
			o.LeaseTTL = max(MinLeaseTTL, ttl.Round(time.Second))
			if o.LeaseTTL < ttl {
				o.LeaseTTL += time.Second
			}
		}
	}
	if o.LeaseTTL < MinLeaseTTL || o.LeaseTTL%time.Second != 0 {
		return invalid("LeaseTTL", "must be whole seconds and at least 1s", o.LeaseTTL)
	}
	return o.placementDefaults()
}

// placementDefaults fills and checks RebalanceDelay and Maintenance (after
// LeaseTTL).
func (o *Options) placementDefaults() error {
	if o.RebalanceDelay == 0 {
		o.RebalanceDelay = DefaultRebalanceDelay
	}
	if o.RebalanceDelay < 0 {
		o.RebalanceDelay = NoRebalanceDelay
	}
	m := &o.Maintenance
	if math.IsNaN(m.Share) || m.Share < 0 || m.Share > 1 {
		return invalid("Maintenance.Share", "must be a fraction between 0 and 1", m.Share)
	}
	if m.Share == 0 {
		m.Share = DefaultMaintenanceShare
	}
	if m.Window < 0 {
		return invalid("Maintenance.Window", "must not be negative", m.Window)
	}
	if m.Window == 0 {
		m.Window = 2 * o.LeaseTTL
	}
	return nil
}

// etcdDefaults checks the external etcd options against the embedded ones.
func (o *Options) etcdDefaults() error {
	if len(o.Etcd.Endpoints) > 0 {
		if o.Bootstrap {
			return invalid("Bootstrap", "cannot be set together with Etcd.Endpoints", o.Bootstrap)
		}
		if o.JoinAddr != "" {
			return invalid("JoinAddr", "cannot be set together with Etcd.Endpoints", o.JoinAddr)
		}
		for _, ep := range o.Etcd.Endpoints {
			if ep == "" {
				return invalid("Etcd.Endpoints", "must not contain an empty endpoint", o.Etcd.Endpoints)
			}
		}
	}
	if err := o.Etcd.check(); err != nil {
		return err
	}
	if o.Etcd.DialTimeout < 0 {
		return invalid("Etcd.DialTimeout", "must not be negative", o.Etcd.DialTimeout)
	}
	if o.Etcd.DialTimeout == 0 {
		o.Etcd.DialTimeout = DefaultDialTimeout
	}
	return nil
}

// embeddedDefaults fills and checks the embedded etcd options.
func (o *Options) embeddedDefaults() error {
	em := &o.Embedded
	if em.MaxVoters == 0 {
		em.MaxVoters = DefaultMaxVoters
	}
	if em.MaxVoters < 1 || em.MaxVoters > 7 {
		return invalid("Embedded.MaxVoters", "must be between 1 and 7", em.MaxVoters)
	}
	if em.TickInterval < 0 || em.ElectionTimeout < 0 {
		return invalid("Embedded", "TickInterval and ElectionTimeout must not be negative",
			fmt.Sprintf("%v/%v", em.TickInterval, em.ElectionTimeout))
	}
	if em.TickInterval > 0 && em.ElectionTimeout > 0 && em.ElectionTimeout < 5*em.TickInterval {
		return invalid("Embedded.ElectionTimeout", fmt.Sprintf("must be at least 5 × TickInterval (%v)", em.TickInterval), em.ElectionTimeout)
	}
	for field, addr := range map[string]string{"Embedded.ClientAddr": em.ClientAddr, "Embedded.PeerAddr": em.PeerAddr} {
		if addr != "" {
			if err := checkHostPort(field, addr, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkHostPort checks that addr is host:port with a valid port (0 allowed
// only when zeroPortOK).
func checkHostPort(field, addr string, zeroPortOK bool) error {
	if addr == "" {
		return invalid(field, "is required (host:port)", addr)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return invalid(field, "must be host:port", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroPortOK) {
		return invalid(field, "must have a port between 1 and 65535", addr)
	}
	return nil
}
