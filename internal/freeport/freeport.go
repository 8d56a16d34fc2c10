// Package freeport picks TCP ports that were free a moment ago, outside the
// kernel's ephemeral range.
//
// A port taken with "listen on port 0" comes from the ephemeral range, the
// same range the kernel hands every outgoing connection and every other
// port-0 listener: released and bound again a moment later, it may have
// been taken in between (seen as "bind: address already in use" on a
// machine running many tests). Ports below that range are never handed out
// by the kernel on its own, so only another explicit pick can collide.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Fallback bounds when the kernel's range cannot be read (non-Linux): the
// IANA dynamic range starts at 49152, so pick below it.
const (
	lowest          = 20000
	defaultEphLow   = 32768
	attemptsPerPick = 100
)

// Pick returns a port on host (an IP address or "localhost") that could be
// bound a moment ago, chosen at random between 20000 and the start of the
// kernel's ephemeral port range. If none is found there it falls back to a
// kernel-chosen port. Safe for concurrent use.
func Pick(host string) (int, error) {
	hi := ephemeralLow() - 1
	for range attemptsPerPick {
		if hi <= lowest {
			break
		}
		p := lowest + rand.IntN(hi-lowest+1)
		if bindable(host, p) {
			return p, nil
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("freeport: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns host:port with a port from Pick.
func Addr(host string) (string, error) {
	p, err := Pick(host)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

func bindable(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphLow
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return defaultEphLow
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 1024 {
		return defaultEphLow
	}
	return n
}
