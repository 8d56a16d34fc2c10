package integration

import (
	"os"
	"testing"

	"github.com/clusterkit-go/clusterkit/internal/leakcheck"
)

func TestMain(m *testing.M) {
	leakcheck.Main(m, func() {
		if cknodeDir != "" {
			os.RemoveAll(cknodeDir)
		}
	})
}
