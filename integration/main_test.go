package integration

import (
	"os"
	"testing"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/internal/leakcheck"
)

func TestMain(m *testing.M) {
	etcdtest.RunMemberIfChild() // the members of etcdtest.StartCluster
	leakcheck.Main(m, func() {
		if cknodeDir != "" {
			os.RemoveAll(cknodeDir)
		}
	})
}
