package clusterkit

import (
	"context"
	"net"
	"net/url"
	"sync"
)

// connSet dials the TCP connections of a node's etcd client (it is the
// client's gRPC dialer when every endpoint is an http(s) URL, see allTCP)
// and remembers them by address, so that cut can close every connection
// to one member at once.
//
// gRPC alone cannot: a member frozen by SIGSTOP keeps its TCP connections
// open (the kernel still acknowledges), so the requests and watches on
// them hang; gRPC's keep-alive pings notice only after 10 s or more (its
// floor), and taking the endpoint out of the client's list closes the
// connection gracefully, which waits for those very streams. Closing the
// socket fails them at once, and the client retries them on another
// member. Safe for concurrent use.
type connSet struct {
	mu    sync.Mutex
	conns map[string]map[*trackedConn]struct{} // by dialed address (host:port)
}

// dial opens a TCP connection to addr (host:port) and tracks it until it
// is closed. It has the signature of grpc.WithContextDialer.
func (s *connSet) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, set: s, addr: addr}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[string]map[*trackedConn]struct{}{}
	}
	if s.conns[addr] == nil {
		s.conns[addr] = map[*trackedConn]struct{}{}
	}
	s.conns[addr][tc] = struct{}{}
	return tc, nil
}

// cut closes every open connection to endpoint (a client URL such as
// https://127.0.0.1:2379) and returns how many it closed. gRPC dials
// again when the client still uses the endpoint.
func (s *connSet) cut(endpoint string) int {
	addr := endpointAddr(endpoint)
	s.mu.Lock()
	conns := s.conns[addr]
	delete(s.conns, addr)
	s.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	return len(conns)
}

func (s *connSet) forget(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns[c.addr], c)
	if len(s.conns[c.addr]) == 0 {
		delete(s.conns, c.addr)
	}
}

// trackedConn leaves its set when closed.
type trackedConn struct {
	net.Conn
	set  *connSet
	addr string
}

func (c *trackedConn) Close() error {
	c.set.forget(c)
	return c.Conn.Close()
}

// allTCP reports whether every endpoint is an http:// or https:// URL,
// which connSet can dial (embedded members always are; an external
// etcd's may also be unix sockets, left to gRPC).
func allTCP(endpoints []string) bool {
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return false
		}
	}
	return len(endpoints) > 0
}

// endpointAddr returns the host:port of a client URL (the address gRPC
// dials), or endpoint itself when it has no scheme.
func endpointAddr(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return endpoint
}
