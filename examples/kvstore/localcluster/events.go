package localcluster

import (
	"context"
	"sync"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/store"
)

// EventLog keeps the events of every node in arrival order; its Add is an
// Options.Events. The zero value is ready to use; it is safe for
// concurrent use.
type EventLog struct {
	mu  sync.Mutex
	all []store.Event
}

// Add appends e.
func (l *EventLog) Add(e store.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, e)
}

// Len returns how many events arrived: a mark for Since.
func (l *EventLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

// Since returns the events that arrived after mark.
func (l *EventLog) Since(mark int) []store.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]store.Event(nil), l.all[mark:]...)
}

// First returns the first event after mark that matches.
func (l *EventLog) First(mark int, match func(store.Event) bool) (store.Event, bool) {
	for _, e := range l.Since(mark) {
		if match(e) {
			return e, true
		}
	}
	return store.Event{}, false
}

// Wait returns the first event after mark that matches, waiting for it
// until ctx ends.
func (l *EventLog) Wait(ctx context.Context, mark int, match func(store.Event) bool) (store.Event, error) {
	for {
		if e, ok := l.First(mark, match); ok {
			return e, nil
		}
		select {
		case <-ctx.Done():
			return store.Event{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
