// Package leakcheck is goleak.VerifyTestMain with a longer grace period,
// for test packages that stop multi-member embedded etcd clusters: etcd's
// peer HTTP server can keep a connection goroutine for up to its 5 s read
// timeout after Close, which goleak's own retries (about a second) would
// report as a leak. Anything still running after 20 s is a real leak.
package leakcheck

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Grace is how long Main waits for goroutines to end after the tests.
const Grace = 20 * time.Second

// Main runs the tests, then the cleanups, then fails the run if goroutines
// started by them are still running Grace later. Use it as TestMain's body.
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	if code == 0 {
		begin := time.Now()
		var err error
		for {
			if err = goleak.Find(); err == nil || time.Since(begin) > Grace {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "leakcheck: goroutines still running %v after the tests: %v\n", Grace, err)
			code = 1
		}
	}
	os.Exit(code)
}
