package clusterkit

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is the wait between retries: it starts at min and doubles up to
// max. With jitter each wait is drawn from [d/2, d], so that nodes that
// failed together do not retry together. Not safe for concurrent use.
type backoff struct {
	min, max, next time.Duration
	jitter         bool
}

func newBackoff(minWait, maxWait time.Duration) *backoff {
	return &backoff{min: minWait, max: maxWait, next: minWait}
}

// wait sleeps the current delay, then doubles it; it returns false if ctx
// ended first.
func (b *backoff) wait(ctx context.Context) bool {
	d := b.next
	if b.jitter && d > 1 {
		d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
	b.next = min(2*b.next, b.max)
	return sleepCtx(ctx, d)
}

// reset starts the next wait from min again (after a success).
func (b *backoff) reset() { b.next = b.min }

// sleepCtx sleeps d; it returns false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
