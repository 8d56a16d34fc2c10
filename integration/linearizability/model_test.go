package linearizability

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Operation kinds.
const (
	opGet = "get"
	opPut = "put"
	opDel = "delete"
)

// kvInput is one client call; kvOutput what a get returned ("" for no
// value: the register of a missing key holds "").
type kvInput struct {
	Op    string `json:"op"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

type kvOutput struct {
	Value string `json:"value"`
}

// registerModel is one register per key: a get returns the value of the
// last put, "" after a delete or before any put.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(kvInput)
		switch in.Op {
		case opGet:
			return output.(kvOutput).Value == state.(string), state
		case opPut:
			return true, in.Value
		default:
			return true, ""
		}
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		switch in.Op {
		case opGet:
			return fmt.Sprintf("get(%s) → %q", in.Key, output.(kvOutput).Value)
		case opPut:
			return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
		default:
			return fmt.Sprintf("delete(%s)", in.Key)
		}
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}

// pending is the Return of a write whose outcome is unknown: it may take
// effect at any time after its call, or never.
const pending = math.MaxInt64

// history records operations from many goroutines, timed on one monotonic
// clock.
type history struct {
	start time.Time

	mu  sync.Mutex
	ops []porcupine.Operation
	// counts by outcome
	acked, unknown, refused, reads int
}

func newHistory() *history { return &history{start: time.Now()} }

// now is the history's clock.
func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

func (h *history) count(field *int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*field++
}

// longestWriteGap returns the longest time between acknowledged writes
// (and the ends of the window) that returned in [from, to].
func (h *history) longestWriteGap(from, to int64) time.Duration {
	h.mu.Lock()
	var acks []int64
	for _, op := range h.ops {
		if op.Input.(kvInput).Op != opGet && op.Return != pending && op.Return >= from && op.Return <= to {
			acks = append(acks, op.Return)
		}
	}
	h.mu.Unlock()
	sort.Slice(acks, func(i, j int) bool { return acks[i] < acks[j] })
	gap, last := int64(0), from
	for _, a := range append(acks, to) {
		gap, last = max(gap, a-last), a
	}
	return time.Duration(gap)
}

func (h *history) snapshot() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// check runs porcupine on the history. On a violation (or a check that
// did not finish) it writes the history as JSON and porcupine's HTML
// visualization into a new directory and returns its path with the error.
func (h *history) check(timeout time.Duration) (porcupine.CheckResult, string, error) {
	ops := h.snapshot()
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, timeout)
	if res == porcupine.Ok {
		return res, "", nil
	}
	dir, err := os.MkdirTemp("", "kvstore-linearizability-")
	if err != nil {
		return res, "", err
	}
	b, err := json.MarshalIndent(ops, "", " ")
	if err != nil {
		return res, dir, err
	}
	if err := os.WriteFile(filepath.Join(dir, "history.json"), b, 0o644); err != nil {
		return res, dir, err
	}
	return res, dir, porcupine.VisualizePath(registerModel, info, filepath.Join(dir, "history.html"))
}
