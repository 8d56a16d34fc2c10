//go:build etcdserver

package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdProcess is a real etcd server (an external binary) on loopback
// ports with a temp data dir, which a test can kill and restart.
type etcdProcess struct {
	t       testing.TB
	bin     string
	dir     string
	client  string
	peer    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
	// tls, when set, makes the client URL https with these extra server
	// flags (certificates) and is the probe client's configuration.
	tls *etcdTLS
}

// etcdTLS is what a TLS etcd needs: its flags and a client that it accepts.
type etcdTLS struct {
	flags  []string
	client *tls.Config
}

// startEtcd starts the binary named by CLUSTERKIT_ETCD_BIN.
func startEtcd(t testing.TB) *etcdProcess { return startEtcdTLS(t, nil) }

// startEtcdTLS starts it with TLS on the client URL when s is not nil.
func startEtcdTLS(t testing.TB, s *etcdTLS) *etcdProcess {
	t.Helper()
	bin := os.Getenv("CLUSTERKIT_ETCD_BIN")
	if bin == "" {
		t.Fatal("CLUSTERKIT_ETCD_BIN is not set: these tests need an etcd binary (apt-get install etcd-server)")
	}
	p := &etcdProcess{t: t, bin: bin, dir: t.TempDir(), client: freePort(t), peer: freePort(t), tls: s}
	t.Cleanup(p.kill)
	p.start()
	return p
}

func (p *etcdProcess) endpoints() []string {
	if p.tls != nil {
		return []string{"https://" + p.client}
	}
	return []string{"http://" + p.client}
}

func (p *etcdProcess) start() {
	p.t.Helper()
	log, err := os.OpenFile(p.dir+"/etcd.log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	p.logFile = log
	args := []string{
		"--name", "ext",
		"--data-dir", p.dir + "/data",
		"--listen-client-urls", p.endpoints()[0],
		"--advertise-client-urls", p.endpoints()[0],
		"--listen-peer-urls", "http://" + p.peer,
		"--initial-advertise-peer-urls", "http://" + p.peer,
		"--initial-cluster", "ext=http://" + p.peer,
		"--heartbeat-interval", "10",
		"--election-timeout", "100",
	}
	var clientTLS *tls.Config
	if p.tls != nil {
		args, clientTLS = append(args, p.tls.flags...), p.tls.client
	}
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.bin, err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(p.cmd, p.exited)
	cli, err := clientv3.New(clientv3.Config{Endpoints: p.endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop(), TLS: clientTLS})
	if err != nil {
		p.t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "probe")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(p.dir + "/etcd.log")
			p.t.Fatalf("etcd at %s not ready: %v\n%s", p.client, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops the process at once (SIGKILL) and waits for it.
func (p *etcdProcess) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.logFile.Close()
	p.cmd = nil
}

func (p *etcdProcess) String() string { return fmt.Sprintf("etcd(%s)", p.client) }
