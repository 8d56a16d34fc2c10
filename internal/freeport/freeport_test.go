package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPickOutsideEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		p, err := Pick("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if p < lowest || p >= low {
			t.Fatalf("Pick = %d, want a port in [%d, %d)", p, lowest, low)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not bindable: %v", p, err)
		}
		l.Close()
	}
}

func TestPickSkipsBoundPort(t *testing.T) {
	// Bind many ports of the range; Pick must never return a bound one.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	bound := map[int]bool{}
	for range 50 {
		p, err := Pick("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if bound[p] {
			t.Fatalf("Pick returned the bound port %d", p)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not bindable: %v", p, err)
		}
		held = append(held, l)
		bound[p] = true
	}
}
