package watcher

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Defaults of the options.
const (
	// DefaultRequestTimeout bounds each read of the prefix and each progress
	// request.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultProgressInterval is how often the watcher asks etcd for a
	// progress notification to check that the watch is alive.
	DefaultProgressInterval = time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait before
	// watching again after a failed watch or read.
	DefaultMinBackoff = 50 * time.Millisecond
	DefaultMaxBackoff = 2 * time.Second
	// minProgressInterval keeps the liveness probe from flooding etcd.
	minProgressInterval = 10 * time.Millisecond
)

// Option configures Watch. Options are validated by Watch, which rejects a
// bad value with an error wrapping ErrInvalidArgument.
type Option func(*config)

type config struct {
	requestTimeout   time.Duration
	progressInterval time.Duration
	minBackoff       time.Duration
	maxBackoff       time.Duration
	logger           *zap.Logger
	serverVersion    string // "": ask the servers (progressIsSafe)
	noPrevValues     bool
}

func defaultConfig() config {
	return config{
		requestTimeout:   DefaultRequestTimeout,
		progressInterval: DefaultProgressInterval,
		minBackoff:       DefaultMinBackoff,
		maxBackoff:       DefaultMaxBackoff,
		logger:           zap.NewNop(),
	}
}

// WithRequestTimeout sets the timeout of each read of the prefix (the
// initial one included) and of each progress request. Default
// DefaultRequestTimeout; it must be > 0.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) { c.requestTimeout = d }
}

// WithProgressInterval sets how often the watcher requests a progress
// notification from etcd. A watch that hears nothing from etcd (no event,
// no progress notification) for two intervals is reported as not
// Connected. Default DefaultProgressInterval; it must be 0 (no probing:
// Connected then only reflects whether the watch is established) or at
// least 10ms.
func WithProgressInterval(d time.Duration) Option {
	return func(c *config) { c.progressInterval = d }
}

// WithBackoff sets the bounds of the wait before watching or reading again
// after a failure. The wait doubles from min to max on consecutive failures
// and is jittered (each wait is drawn from [w/2, w]). Defaults
// DefaultMinBackoff and DefaultMaxBackoff; it needs 0 < min <= max.
func WithBackoff(minWait, maxWait time.Duration) Option {
	return func(c *config) { c.minBackoff, c.maxBackoff = minWait, maxWait }
}

// WithLogger sets the logger for retries and re-reads (debug and info
// levels). Default (and nil): zap.NewNop().
func WithLogger(l *zap.Logger) Option {
	return func(c *config) {
		if l == nil {
			l = zap.NewNop()
		}
		c.logger = l
	}
}

// WithServerVersion tells Watch the etcd version (e.g. "3.7.3") that every
// server behind the client runs, when the caller knows it (a cluster of
// embedded members of one build: go.etcd.io/etcd/api/v3/version.Version).
// Watch then decides from it whether progress notifications can be trusted
// to move Revision (etcd #15220) and sends no Maintenance Status request to
// the endpoints, which it otherwise does once per Watch (a Status reaching
// a member that is being removed or closed can crash that member's
// process: etcd #21966, #22189). It must look like "major.minor.patch".
func WithServerVersion(v string) Option {
	return func(c *config) { c.serverVersion = v }
}

// WithoutPrevValues makes the watcher keep no copy of the values it
// delivered: it remembers each key's revisions only. Event.PrevValue is then
// an empty, non-nil slice for an update or a Delete (still nil for a Put
// that creates the key, so IsCreate holds). For consumers that keep what
// they need of each value themselves: the watcher's copy of a large prefix
// otherwise costs as much memory as the prefix's values.
func WithoutPrevValues() Option {
	return func(c *config) { c.noPrevValues = true }
}

func (c config) validate() error {
	var major, minor, patch int
	if c.serverVersion != "" {
		if _, err := fmt.Sscanf(c.serverVersion, "%d.%d.%d", &major, &minor, &patch); err != nil {
			return fmt.Errorf("%w: WithServerVersion(%q): want major.minor.patch", ErrInvalidArgument, c.serverVersion)
		}
	}
	switch {
	case c.requestTimeout <= 0:
		return fmt.Errorf("%w: WithRequestTimeout(%s): must be > 0", ErrInvalidArgument, c.requestTimeout)
	case c.progressInterval != 0 && c.progressInterval < minProgressInterval:
		return fmt.Errorf("%w: WithProgressInterval(%s): must be 0 or >= %s", ErrInvalidArgument, c.progressInterval, minProgressInterval)
	case c.minBackoff <= 0 || c.maxBackoff < c.minBackoff:
		return fmt.Errorf("%w: WithBackoff(%s, %s): need 0 < min <= max", ErrInvalidArgument, c.minBackoff, c.maxBackoff)
	}
	return nil
}
