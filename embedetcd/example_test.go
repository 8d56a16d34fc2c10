package embedetcd_test

import (
	"context"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/embedetcd"
)

func ExampleDefaultAddrs() {
	client, peer, err := embedetcd.DefaultAddrs("10.0.0.5:8080")
	fmt.Println(client, peer, err)
	// Output: 10.0.0.5:18080 10.0.0.5:28080 <nil>
}

func ExampleStart() {
	dir, err := os.MkdirTemp("", "embedetcd-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A new one-member cluster; Join(ctx, cfg, []string{m.ClientURL()})
	// with another Config would add a second member.
	m, err := embedetcd.Start(ctx, embedetcd.FastTestConfig("node1", dir))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Stop()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL()}, Logger: zap.NewNop()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "greeting", "hello"); err != nil {
		fmt.Println(err)
		return
	}
	resp, err := cli.Get(ctx, "greeting")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", resp.Kvs[0].Value)
	// Output: hello
}
