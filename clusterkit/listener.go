package clusterkit

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// sniffTimeout bounds the wait for a new connection's first byte.
const sniffTimeout = 10 * time.Second

// tlsRecordHandshake is the first byte of a TLS connection (a handshake
// record); no HTTP request starts with it.
const tlsRecordHandshake = 0x16

// plainRefusal answers a plain HTTP connection on a TLS-only port.
const plainRefusal = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n" +
	"Content-Length: 40\r\n\r\nthis port serves TLS only: use https://\n"

// mixedListener serves TLS and, if plain, plain HTTP on one port: it reads
// each new connection's first byte and hands Accept a *tls.Conn (so that
// net/http sees the request's TLS state) when it starts a TLS handshake,
// the connection itself otherwise. Without plain, a plain connection gets
// a 400 answer saying "use https://" and is closed.
//
// Goroutines: one accept loop, and one per connection until its first byte
// is read (at most sniffTimeout); Close ends them all and waits for them.
// Safe for concurrent use.
type mixedListener struct {
	ln    net.Listener
	cfg   *tls.Config
	plain bool

	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup

	mu      sync.Mutex
	pending map[net.Conn]struct{} // connections whose first byte is awaited
	err     error                 // why the accept loop ended
}

// newMixedListener starts serving ln; the caller closes the result.
func newMixedListener(ln net.Listener, cfg *tls.Config, plain bool) *mixedListener {
	l := &mixedListener{ln: ln, cfg: cfg, plain: plain, conns: make(chan net.Conn),
		done: make(chan struct{}), pending: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *mixedListener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			l.shut()
			return
		}
		l.mu.Lock()
		select {
		case <-l.done:
			l.mu.Unlock()
			c.Close()
			return
		default:
		}
		l.pending[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.sniff(c)
	}
}

// sniff reads c's first byte and passes c on to Accept.
func (l *mixedListener) sniff(c net.Conn) {
	defer l.wg.Done()
	var first [1]byte
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	_, err := c.Read(first[:])
	c.SetReadDeadline(time.Time{})
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
	if err != nil {
		c.Close()
		return
	}
	var out net.Conn = &sniffedConn{Conn: c, first: first[:]}
	switch {
	case first[0] == tlsRecordHandshake:
		out = tls.Server(out, l.cfg)
	case !l.plain:
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte(plainRefusal))
		c.Close()
		return
	}
	select {
	case l.conns <- out:
	case <-l.done:
		c.Close()
	}
}

// Accept returns the next connection, TLS or plain.
func (l *mixedListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting, closes the connections whose first byte has not
// arrived, and waits for the listener's goroutines. Idempotent.
func (l *mixedListener) Close() error {
	err := l.shut()
	l.wg.Wait()
	return err
}

// shut is Close without the wait (the accept loop calls it).
func (l *mixedListener) shut() error {
	var err error
	l.once.Do(func() {
		l.mu.Lock()
		close(l.done)
		for c := range l.pending {
			c.Close()
		}
		l.mu.Unlock()
		err = l.ln.Close()
	})
	return err
}

// Addr is the listener's address.
func (l *mixedListener) Addr() net.Addr { return l.ln.Addr() }

// sniffedConn replays the byte read by sniff before the rest.
type sniffedConn struct {
	net.Conn
	first []byte
}

func (c *sniffedConn) Read(b []byte) (int, error) {
	if len(c.first) > 0 && len(b) > 0 {
		n := copy(b, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// serverTLS is the HTTP API's TLS: the cluster certificate (secure
// embedded mode) with plain HTTP on the same port; Options.HTTPTLS alone,
// or HTTPTLS with the cluster certificate for the join server name, and
// no plain HTTP; nil (plain HTTP only) without either.
func (r *run) serverTLS() (cfg *tls.Config, plain bool) {
	user := r.ck.httpTLS
	var cluster *tls.Config
	if r.tls != nil {
		cluster = r.tls.serverConfig()
	}
	switch {
	case user == nil:
		return cluster, true
	case cluster == nil:
		return user, false
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if hello.ServerName == joinServerName {
				return cluster, nil
			}
			return user, nil
		},
	}, false
}
