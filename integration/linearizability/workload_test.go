package linearizability

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/client"
	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
)

// workload runs concurrent clients that read, write and delete a few keys
// through random running nodes (frozen ones included) and records every
// call in a history.
type workload struct {
	h       *history
	cluster *localcluster.Cluster
	keys    []string
	http    *http.Client
	wg      sync.WaitGroup
}

func newWorkload(c *localcluster.Cluster, keys int) *workload {
	w := &workload{h: newHistory(), cluster: c, http: &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
	}}}
	for i := range keys {
		w.keys = append(w.keys, fmt.Sprintf("key-%02d", i))
	}
	return w
}

// start runs n clients until ctx ends.
func (w *workload) start(ctx context.Context, n int) {
	for id := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.client(ctx, id)
		}()
	}
}

// wait waits for the clients to end and closes their connections.
func (w *workload) wait() {
	w.wg.Wait()
	w.http.CloseIdleConnections()
}

// nodeClient returns a client of the nodes running now.
func (w *workload) nodeClient() (*client.Client, error) {
	var addrs []string
	for _, n := range w.cluster.Running() {
		addrs = append(addrs, n.API)
	}
	return client.New(addrs, client.WithHTTPClient(w.http), client.WithAttemptTimeout(time.Second))
}

func (w *workload) client(ctx context.Context, id int) {
	for seq := 0; ctx.Err() == nil; seq++ {
		c, err := w.nodeClient()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		in := kvInput{Key: w.keys[rand.IntN(len(w.keys))]}
		switch r := rand.IntN(100); {
		case r < 50:
			in.Op = opGet
		case r < 95:
			in.Op, in.Value = opPut, fmt.Sprintf("c%d-%d", id, seq)
		default:
			in.Op = opDel
		}
		w.do(id, c, in)
		time.Sleep(time.Duration(4+rand.IntN(9)) * time.Millisecond) // about 100 calls per second per client
	}
}

// do runs one call and records it: a success with its return time; a
// write whose outcome is unknown as never returning (it may take effect
// at any later time, or never); a call refused before it changed anything,
// and a failed read, not at all.
func (w *workload) do(id int, c *client.Client, in kvInput) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	op := porcupine.Operation{ClientId: id, Input: in, Call: w.h.now()}
	var err error
	switch in.Op {
	case opGet:
		var v string
		v, _, err = c.Get(ctx, in.Key)
		op.Output = kvOutput{Value: v}
	case opPut:
		err = c.Put(ctx, in.Key, in.Value)
		op.Output = kvOutput{}
	default:
		err = c.Delete(ctx, in.Key)
		op.Output = kvOutput{}
	}
	op.Return = w.h.now()
	switch {
	case err == nil:
		if in.Op == opGet {
			w.h.count(&w.h.reads)
		} else {
			w.h.count(&w.h.acked)
		}
	case in.Op == opGet || errors.Is(err, client.ErrNotApplied):
		w.h.count(&w.h.refused)
		return
	default:
		w.h.count(&w.h.unknown)
		op.Return = pending
	}
	w.h.add(op)
}

// readAll reads every key once more, after the faults, so that a lost
// acknowledged write shows in the history.
func (w *workload) readAll() error {
	c, err := w.nodeClient()
	if err != nil {
		return err
	}
	for _, k := range w.keys {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		op := porcupine.Operation{ClientId: 0, Input: kvInput{Op: opGet, Key: k}, Call: w.h.now()}
		v, _, err := c.Get(ctx, k)
		cancel()
		if err != nil {
			return fmt.Errorf("final read of %s: %w", k, err)
		}
		op.Output, op.Return = kvOutput{Value: v}, w.h.now()
		w.h.add(op)
	}
	return nil
}
