package examples_test

import (
	"errors"
	"fmt"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// Every error names the field, the rule and the value, and wraps a
// sentinel for errors.Is.
func Example_invalidOptions() {
	_, err := clusterkit.New(clusterkit.Options{NodeID: "node-1", HTTPAddr: "localhost"})
	fmt.Println(err)
	fmt.Println(errors.Is(err, clusterkit.ErrInvalidOptions))
	// Output:
	// clusterkit: invalid options: HTTPAddr must be host:port, got "localhost"
	// true
}
