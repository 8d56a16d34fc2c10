package embedetcd

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/clusterkit-go/clusterkit/internal/freeport"
)

// Defaults and the port derivation of DefaultAddrs.
const (
	// DefaultClientAddr is used when Config.ClientAddr is empty (etcd's
	// standard client port on loopback).
	DefaultClientAddr = "127.0.0.1:2379"
	// DefaultPeerAddr is used when Config.PeerAddr is empty (etcd's
	// standard peer port on loopback).
	DefaultPeerAddr = "127.0.0.1:2380"
	// DefaultTickMs is etcd's heartbeat interval, used when Config.TickMs is 0.
	DefaultTickMs = 100
	// DefaultElectionMs is etcd's election timeout, used when
	// Config.ElectionMs is 0.
	DefaultElectionMs = 1000
	// DefaultAutoCompaction is the history kept by periodic auto-compaction
	// when Config.AutoCompaction is 0.
	DefaultAutoCompaction = time.Hour

	// ClientPortOffset and PeerPortOffset are added to the base port by
	// DefaultAddrs: base 8080 gives client 18080 and peer 28080.
	ClientPortOffset = 10000
	PeerPortOffset   = 20000

	maxElectionMs = 50000 // etcd's limit
)

// Config describes one embedded etcd member. The zero value is not usable:
// Name and Dir are required; every other field has a documented default.
// A Config is a plain value; Start and Join do not modify or retain the
// caller's copy.
type Config struct {
	// Name is the member name, unique within the etcd cluster. Required;
	// must not contain '=' or ',' or whitespace.
	Name string
	// Dir is the data dir. Required. etcd keeps its data in Dir/member; a
	// removed member's data is moved aside to Dir/member.removed-<time>.
	Dir string

	// ClientAddr is the host:port clients connect to. The host must be an
	// IP address or "localhost" (etcd binds to it); an empty or unspecified
	// host (":2379", "0.0.0.0:2379", "[::]:2379") listens on every
	// interface and then needs AdvertiseHost. Port 0 picks a free port at
	// start; read it back with Member.ClientURL. Default DefaultClientAddr.
	ClientAddr string
	// PeerAddr is the host:port for peer (Raft) traffic, same host rules as
	// ClientAddr. The port must be concrete (1-65535): other members learn
	// the peer URL before this member starts, and it must stay the same
	// across restarts. Default DefaultPeerAddr.
	PeerAddr string
	// AdvertiseHost is the host name or IP put in the URLs that this
	// member advertises to clients and peers. Default: the host of
	// ClientAddr / PeerAddr respectively; required if that host is
	// unspecified.
	AdvertiseHost string

	// TickMs is the Raft heartbeat interval in milliseconds; 0 means
	// DefaultTickMs (100). ElectionMs is the election timeout; 0 means
	// DefaultElectionMs (1000). ElectionMs must be at least 5 × TickMs and
	// at most 50000. All members of a cluster should use the same values.
	TickMs, ElectionMs uint

	// DisableStrictReconfigCheck turns off etcd's strict reconfiguration
	// check on this member (etcd's --strict-reconfig-check=false). The
	// check applies to member changes that this member handles: with it,
	// adding a learner is refused until this member has been connected to
	// a quorum for 5 s (so each join right after another one waits up to
	// 5 s), and promoting a learner or removing a voter is refused when it
	// would leave fewer started or connected voters than a quorum. Learner
	// adds cannot break quorum, but the voter-removal guard protects an
	// operator from removing a live voter while another one is down, so
	// the check stays on by default. Join retries "unhealthy cluster"
	// either way.
	DisableStrictReconfigCheck bool

	// MaxVoters, when not 0, bounds the voters Join makes: a fresh join
	// gives up with ErrEnoughVoters when the cluster has MaxVoters voters,
	// checked before the learner is added and again, linearizably, before
	// it is promoted (etcd admits one learner at a time, so concurrent
	// joins cannot overshoot). A restart from a data dir is not bounded.
	MaxVoters int

	// AutoCompaction is the history kept by etcd's periodic
	// auto-compaction; 0 means DefaultAutoCompaction (1 h), a negative
	// value disables auto-compaction (history then grows without bound).
	AutoCompaction time.Duration

	// UnsafeNoFsync skips fsync: data can be lost on a machine crash. For
	// tests only (FastTestConfig sets it).
	UnsafeNoFsync bool

	// TLS, when not nil, puts the client and peer listeners behind mutual
	// TLS (https URLs, client certificates required) and makes the member's
	// own clients present the certificate; see TLSFiles. nil: plain http,
	// open to anyone who reaches the ports. All members of a cluster must
	// agree, and a member's data dir keeps its URLs: turning TLS on or off
	// needs a new cluster.
	TLS *TLSFiles

	// Logger receives this package's logs and etcd's own logs at Warn level
	// and above (named "etcd"). nil means no logging. Note that etcd calls
	// Fatal on a few unrecoverable storage errors, which exits the process
	// unless the logger has a different fatal hook.
	Logger *zap.Logger
}

// DefaultAddrs derives etcd's client and peer addresses from a base address
// (ClusterKit's HTTPAddr): same host, client port = base port +
// ClientPortOffset (10000), peer port = base port + PeerPortOffset (20000).
// For example "10.0.0.5:8080" gives "10.0.0.5:18080" and "10.0.0.5:28080".
// Nodes on one host with consecutive base ports therefore get distinct
// ports. The base port must be between 1 and 45535 so that both results
// are valid ports; the error wraps ErrInvalidConfig otherwise.
func DefaultAddrs(base string) (client, peer string, err error) {
	host, portStr, err := net.SplitHostPort(base)
	if err != nil {
		return "", "", fmt.Errorf("%w: base address %q: %v", ErrInvalidConfig, base, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", "", fmt.Errorf("%w: base address %q: port must be 1-65535", ErrInvalidConfig, base)
	}
	if port+PeerPortOffset > 65535 {
		return "", "", fmt.Errorf("%w: base address %q: port %d + %d exceeds 65535; set ClientAddr and PeerAddr explicitly",
			ErrInvalidConfig, base, port, PeerPortOffset)
	}
	return net.JoinHostPort(host, strconv.Itoa(port+ClientPortOffset)),
		net.JoinHostPort(host, strconv.Itoa(port+PeerPortOffset)), nil
}

// FastTestConfig returns a Config for tests: loopback only, client port 0,
// a peer port that was free a moment ago (outside the kernel's ephemeral
// range, see internal/freeport), TickMs 10 / ElectionMs 100
// (ready in tens of milliseconds), no fsync, no logging. The strict
// reconfiguration check stays on, as in production, so joins behave as
// they will there. If no free port can be found, PeerAddr has port 0 and
// Start / Join report ErrInvalidConfig.
func FastTestConfig(name, dir string) Config {
	peer := "127.0.0.1:0"
	if addr, err := freeport.Addr("127.0.0.1"); err == nil {
		peer = addr
	}
	return Config{
		Name:          name,
		Dir:           dir,
		ClientAddr:    "127.0.0.1:0",
		PeerAddr:      peer,
		TickMs:        10,
		ElectionMs:    100,
		UnsafeNoFsync: true,
	}
}

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	clientBindHost string
	clientPort     int // 0 = choose at start
	clientAdvHost  string
	peerBindHost   string
	peerPort       int
	peerURL        string      // advertised
	clientTLS      *tls.Config // the member's own clients; nil without TLS
	log            *zap.Logger
	etcdLog        *zap.Logger
}

// validate checks cfg and applies defaults. The error names the field and
// wraps ErrInvalidConfig.
func (cfg Config) validate() (*settings, error) {
	s := &settings{Config: cfg}
	bad := func(format string, args ...any) (*settings, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if cfg.Name == "" {
		return bad("Name is required")
	}
	if strings.ContainsAny(cfg.Name, "=,") || strings.IndexFunc(cfg.Name, isSpace) >= 0 {
		return bad("Name %q must not contain '=', ',' or whitespace", cfg.Name)
	}
	if cfg.Dir == "" {
		return bad("Dir is required (member %q)", cfg.Name)
	}
	if cfg.AdvertiseHost != "" {
		if strings.ContainsAny(cfg.AdvertiseHost, "/@?# ") || isUnspecified(cfg.AdvertiseHost) {
			return bad("AdvertiseHost %q must be a host name or a specific IP address", cfg.AdvertiseHost)
		}
	}
	if s.ClientAddr == "" {
		s.ClientAddr = DefaultClientAddr
	}
	if s.PeerAddr == "" {
		s.PeerAddr = DefaultPeerAddr
	}
	var err error
	var clientAdv, peerAdv string
	if s.clientBindHost, clientAdv, s.clientPort, err = splitAddr("ClientAddr", s.ClientAddr, cfg.AdvertiseHost); err != nil {
		return nil, err
	}
	if s.peerBindHost, peerAdv, s.peerPort, err = splitAddr("PeerAddr", s.PeerAddr, cfg.AdvertiseHost); err != nil {
		return nil, err
	}
	if s.peerPort == 0 {
		return bad("PeerAddr %q: port must be concrete (1-65535), not 0", s.PeerAddr)
	}
	s.clientAdvHost = clientAdv
	if cfg.TLS != nil {
		if s.clientTLS, err = cfg.TLS.load(); err != nil {
			return nil, err
		}
	}
	s.peerURL = (&url.URL{Scheme: s.scheme(), Host: net.JoinHostPort(peerAdv, strconv.Itoa(s.peerPort))}).String()

	if s.TickMs == 0 {
		s.TickMs = DefaultTickMs
	}
	if s.ElectionMs == 0 {
		s.ElectionMs = DefaultElectionMs
	}
	if s.ElectionMs < 5*s.TickMs {
		return bad("ElectionMs (%d) must be at least 5 × TickMs (%d)", s.ElectionMs, s.TickMs)
	}
	if s.ElectionMs > maxElectionMs {
		return bad("ElectionMs (%d) must be at most %d", s.ElectionMs, maxElectionMs)
	}
	if s.MaxVoters < 0 {
		return bad("MaxVoters (%d) must not be negative", s.MaxVoters)
	}
	if s.AutoCompaction == 0 {
		s.AutoCompaction = DefaultAutoCompaction
	}
	if s.AutoCompaction > 0 && s.AutoCompaction < time.Second {
		return bad("AutoCompaction (%s) must be at least 1s, or negative to disable", s.AutoCompaction)
	}
	s.log = cfg.Logger
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.log = s.log.With(zap.String("member", cfg.Name))
	s.etcdLog = s.log.Named("etcd").WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))
	return s, nil
}

// splitAddr parses a listen address; it returns the host to bind, the host
// to advertise and the port.
func splitAddr(field, addr, advertise string) (bind, adv string, port int, err error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", 0, fmt.Errorf("%w: %s %q: %v", ErrInvalidConfig, field, addr, err)
	}
	port, err = strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", "", 0, fmt.Errorf("%w: %s %q: port must be a number 0-65535", ErrInvalidConfig, field, addr)
	}
	switch {
	case host == "" || isUnspecified(host):
		if advertise == "" {
			return "", "", 0, fmt.Errorf("%w: %s %q listens on every interface; set AdvertiseHost to the address other members reach",
				ErrInvalidConfig, field, addr)
		}
		bind = host
		if bind == "" {
			bind = "0.0.0.0"
		}
	case host == "localhost" || net.ParseIP(host) != nil:
		bind = host
	default:
		return "", "", 0, fmt.Errorf("%w: %s %q: host must be an IP address or localhost (etcd binds to it); put a host name in AdvertiseHost",
			ErrInvalidConfig, field, addr)
	}
	adv = advertise
	if adv == "" {
		adv = host
	}
	return bind, adv, port, nil
}

// loopbackOf returns the loopback address of host's family.
func loopbackOf(host string) string {
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return "::1"
	}
	return "127.0.0.1"
}

func isUnspecified(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// clientURLs returns the listen and advertised client URLs for a concrete
// port.
func (s *settings) clientURLs(port int) (listen, adv url.URL) {
	p := strconv.Itoa(port)
	return url.URL{Scheme: s.scheme(), Host: net.JoinHostPort(s.clientBindHost, p)},
		url.URL{Scheme: s.scheme(), Host: net.JoinHostPort(s.clientAdvHost, p)}
}

// embedConfig builds etcd's configuration for one start attempt.
// initialCluster and state only matter when the data dir is empty.
func (s *settings) embedConfig(clientPort int, initialCluster, token, state string) *embed.Config {
	ec := embed.NewConfig()
	ec.Name = s.Name
	ec.Dir = s.Dir
	ec.TickMs = s.TickMs
	ec.ElectionMs = s.ElectionMs
	lc, ac := s.clientURLs(clientPort)
	ec.ListenClientUrls = []url.URL{lc}
	ec.AdvertiseClientUrls = []url.URL{ac}
	if s.TLS != nil {
		// With TLS on its client URL, etcd serves gRPC through its HTTP
		// server (ServeHTTP), where grpc.Server.Stop cannot end the
		// streams of connected clients and CloseClients (and so Stop)
		// can hang. An HTTP-only listener of its own (loopback, a port
		// the kernel picks: etcd's /health, /metrics and JSON gateway)
		// leaves the client URL to gRPC's own transport, which Stop
		// closes at once.
		ec.ListenClientHttpUrls = []url.URL{{Scheme: "https", Host: net.JoinHostPort(loopbackOf(s.clientBindHost), "0")}}
	}
	peerAdv, _ := url.Parse(s.peerURL)
	ec.ListenPeerUrls = []url.URL{{Scheme: s.scheme(), Host: net.JoinHostPort(s.peerBindHost, strconv.Itoa(s.peerPort))}}
	ec.AdvertisePeerUrls = []url.URL{*peerAdv}
	ec.InitialCluster = initialCluster
	if token != "" {
		ec.InitialClusterToken = token
	}
	ec.ClusterState = state
	ec.StrictReconfigCheck = !s.DisableStrictReconfigCheck
	if s.AutoCompaction > 0 {
		ec.AutoCompactionMode = embed.CompactorModePeriodic
		ec.AutoCompactionRetention = s.AutoCompaction.String()
	}
	ec.UnsafeNoFsync = s.UnsafeNoFsync
	if s.TLS != nil {
		ec.ClientTLSInfo = s.TLS.info(s)
		ec.PeerTLSInfo = s.TLS.info(s)
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(s.etcdLog)
	return ec
}
