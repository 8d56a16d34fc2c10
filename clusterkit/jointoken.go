package clusterkit

import (
	"context"
	"fmt"
)

// JoinToken returns the token a new node joins with: "ck1.<ca-sha256>.<secret>"
// when this node keeps the cluster CA certificate in DataDir/tls (the pin
// lets the joiner authenticate the cluster), else the plain secret. The
// secret is this node's ClusterToken's. After a rotation (RotateSecret)
// this node's own secret is no longer the cluster's: JoinToken then fails
// with ErrUnauthorized until Options.ClusterToken holds the rotated token
// (which RotateSecret returned). Safe for concurrent use.
func (ck *ClusterKit) JoinToken() (string, error) {
	own := secretOf(ck.opts.ClusterToken)
	if own == "" {
		return "", fmt.Errorf("%w: join token: this node has no ClusterToken", ErrUnauthorized)
	}
	rec, _, err := ck.readSecrets(context.Background())
	if err != nil {
		return "", err
	}
	if rec != nil && hashSecret(own) != rec.Current {
		return "", fmt.Errorf("%w: join token: the cluster secret was rotated at %s and this node's ClusterToken is not the current one; use the token the rotation printed",
			ErrUnauthorized, rec.RotatedAt.Format("2006-01-02T15:04:05Z07:00"))
	}
	return ck.tokenFor(own), nil
}
