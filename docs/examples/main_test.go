package examples_test

import (
	"testing"

	"github.com/clusterkit-go/clusterkit/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
