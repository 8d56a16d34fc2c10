package leases

import (
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// DefaultRequestTimeout bounds every single etcd request made by this
// package unless WithRequestTimeout says otherwise.
const DefaultRequestTimeout = 5 * time.Second

// MinTTL is the smallest TTL Register accepts. The etcd server may require
// more (1.5 × its election timeout, rounded up to whole seconds); Register
// detects that and fails with ErrInvalidTTL.
const MinTTL = time.Second

// Option configures Register.
type Option func(*options)

type options struct {
	prevLease      clientv3.LeaseID
	requestTimeout time.Duration
	logger         *zap.Logger
	dial           Dialer // nil: the client's Dial
}

func defaultOptions() options {
	return options{requestTimeout: DefaultRequestTimeout, logger: zap.NewNop()}
}

// WithPreviousLease proves that the caller is the key's previous holder,
// typically a restarted process that persisted Registration.LeaseID. If the
// key is bound to exactly this lease, Register rebinds the key to its new
// lease in one Txn (watchers see a put, never a gap) and then revokes the
// old lease, so keys bound to the old lease go too and a still-running old
// Registration ends with ErrKeyReplaced (or ErrLeaseLost, when its
// keep-alive meets the revoked lease before its watch sees the new
// binding). If the key is bound to another
// lease, the proof does not apply and Register waits as without it. After
// any successful Register with this option the previous lease is revoked.
//
// Pass only a lease id your own process persisted: presenting a live
// holder's id takes its registration away. Zero means no proof.
func WithPreviousLease(id clientv3.LeaseID) Option {
	return func(o *options) { o.prevLease = id }
}

// WithRequestTimeout bounds each etcd request (grant, txn, keep-alive,
// revoke, ...) made by Register and by the Registration; it must be
// positive. Default DefaultRequestTimeout. Keep-alives are further bounded by
// the lease's estimated expiry, and another is sent to the next endpoint
// after min(TTL/4, request timeout) without an answer.
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) { o.requestTimeout = d }
}

// WithLogger sets the logger for events that are not returned as errors
// (retried keep-alives, waits, takeovers). Default zap.NewNop(). A nil
// logger keeps the default.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// Dialer opens a gRPC connection to one etcd endpoint with the client's
// settings (TLS, auth, dial options), as clientv3.Client.Dial does.
type Dialer func(endpoint string) (*grpc.ClientConn, error)

// WithDialer sets how the keep-alive connects to one etcd endpoint (it
// keeps a connection per endpoint, see Registration). Default: the
// client's Dial. Give one when the client's endpoints change while the
// Registration runs (SetEndpoints, Config.AutoSyncInterval):
// clientv3.Client.Dial reads the endpoint list without the client's lock
// (v3.7.3), a data race with SetEndpoints, so the caller must serialize
// its endpoint changes with these dials, for example by holding one mutex
// around both. dial is called from the keep-alive goroutine. A nil dial
// keeps the default.
func WithDialer(dial Dialer) Option {
	return func(o *options) { o.dial = dial }
}
