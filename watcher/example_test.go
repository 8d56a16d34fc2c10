package watcher_test

import (
	"context"
	"fmt"
	"log"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/clusterkit-go/clusterkit/watcher"
)

// A consumer that keeps a local copy of a prefix. It is not run (it needs
// an etcd); see the package tests for runnable uses.
func Example() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://127.0.0.1:2379"}})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := watcher.Watch(ctx, cli, "/clusterkit/default/members/")
	if err != nil {
		log.Fatal(err) // the initial read failed
	}
	defer w.Close()

	members := map[string][]byte{}
	for b := range w.Batches() { // closed when ctx ends or w.Close is called
		for _, e := range b.Events {
			switch {
			case e.Type == watcher.Delete:
				delete(members, e.Key)
				fmt.Println("left:", e.Key)
			case e.IsCreate():
				members[e.Key] = e.Value
				fmt.Println("joined:", e.Key)
			default:
				members[e.Key] = e.Value
				fmt.Println("updated:", e.Key)
			}
		}
		// members now equals etcd's state at b.Revision.
	}
	if err := w.Err(); err != nil {
		log.Print(err)
	}
}
