package clusterkit

import (
	"testing"
	"time"
)

func TestKeepAliveTimeoutFollowsLeaseTTL(t *testing.T) {
	for _, c := range []struct{ ttl, want time.Duration }{
		{time.Second, 2 * time.Second},
		{3 * time.Second, 2 * time.Second},
		{DefaultLeaseTTL, 2 * time.Second},
		{9 * time.Second, 3 * time.Second},
		{30 * time.Second, 10 * time.Second},
	} {
		t.Run(c.ttl.String(), func(t *testing.T) {
			if got := keepAliveTimeout(c.ttl); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestStateReadTimeoutFollowsLeaseTTL(t *testing.T) {
	for _, c := range []struct{ ttl, want time.Duration }{
		{time.Second, 5 * time.Second},
		{DefaultLeaseTTL, 5 * time.Second},
		{30 * time.Second, 30 * time.Second},
	} {
		t.Run(c.ttl.String(), func(t *testing.T) {
			if got := stateReadTimeout(c.ttl); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}
