package clusterkit

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// Secret rotation. The cluster secret (the secret part of ClusterToken)
// can be rotated without restarting any node: RotateSecret (or POST
// /cluster/secret/rotate, or `clusterkit token rotate`) generates a new
// secret and writes the SHA-256 hashes of the secrets the cluster accepts
// to the key "secrets" under the cluster's prefix: the new one as current,
// the one it replaces (and earlier ones still in their window) with the
// time their window ends. From then on every node accepts exactly those
// (tokenAccepted); before the first rotation a node accepts its own
// ClusterToken. The plain new secret is returned once and never stored.
const (
	// DefaultSecretWindow is how long a replaced secret stays accepted
	// when RotateSecret is given no window.
	DefaultSecretWindow = 24 * time.Hour
	// MaxSecretWindow bounds a rotation's window.
	MaxSecretWindow = 30 * 24 * time.Hour
	// maxPreviousSecrets bounds the replaced secrets kept in their window.
	maxPreviousSecrets = 8
)

// secretsRecord is the value of keys.secrets(): hex SHA-256 hashes.
type secretsRecord struct {
	Current   string           `json:"current"`
	Previous  []previousSecret `json:"previous,omitempty"`
	RotatedAt time.Time        `json:"rotated_at"`
}

type previousSecret struct {
	Hash  string    `json:"hash"`
	Until time.Time `json:"until"`
}

func (k keys) secrets() string { return k.root + "secrets" }

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// accepts reports, comparing every hash in constant time, whether hash is
// the current secret's or a previous one's whose window has not ended.
func (s *secretsRecord) accepts(hash string, now time.Time) bool {
	ok := subtle.ConstantTimeCompare([]byte(hash), []byte(s.Current))
	for _, p := range s.Previous {
		live := 0
		if now.Before(p.Until) {
			live = 1
		}
		ok |= subtle.ConstantTimeCompare([]byte(hash), []byte(p.Hash)) & live
	}
	return ok == 1
}

// tokenAccepted is the one check of a presented cluster token: its secret
// part must be one the cluster accepts now. With no rotation recorded in
// etcd (or etcd unreadable, or the node not started) that is this node's
// own secret (clusterSecret: its ClusterToken's, or the one it generated
// in secure embedded mode); after a rotation it is the current secret or a
// replaced one within its window, for every node alike.
func (ck *ClusterKit) tokenAccepted(ctx context.Context, presented string) bool {
	got := tokenSecret(presented)
	if got == "" {
		return false
	}
	if rec, ok := ck.loadSecrets(ctx); ok {
		return rec.accepts(hashSecret(got), time.Now())
	}
	own := ck.clusterSecret()
	return own != "" && subtle.ConstantTimeCompare([]byte(got), []byte(own)) == 1
}

// loadSecrets reads the rotation record; false when there is none or it
// cannot be read.
func (ck *ClusterKit) loadSecrets(ctx context.Context) (*secretsRecord, bool) {
	rec, _, err := ck.readSecrets(ctx)
	if err != nil {
		ck.log.Warn("cannot read the cluster's secrets; only this node's ClusterToken is accepted", zapErr(err))
		return nil, false
	}
	return rec, rec != nil
}

// readSecrets returns the record (nil: none) and its mod revision.
func (ck *ClusterKit) readSecrets(ctx context.Context) (*secretsRecord, int64, error) {
	r := ck.active.Load()
	if r == nil || r.ctx.Err() != nil {
		return nil, 0, nil
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	// Serializable: answered by the nearest member, also without a quorum
	// (a rotation reaches it within milliseconds).
	resp, err := r.cli.Get(rctx, ck.keys.secrets(), clientv3.WithSerializable())
	if err != nil {
		return nil, 0, fmt.Errorf("clusterkit: read %s: %w", ck.keys.secrets(), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	var rec secretsRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return nil, 0, fmt.Errorf("clusterkit: malformed %s: %w", ck.keys.secrets(), err)
	}
	return &rec, resp.Kvs[0].ModRevision, nil
}

// SecretRotation is the result of RotateSecret.
type SecretRotation struct {
	// Token is the new join token, "ck1.<ca-sha256>.<secret>" when this
	// node holds the cluster CA certificate, else the plain secret. It is
	// shown once: only its hash is stored.
	Token string `json:"token"`
	// PreviousUntil is when the replaced secret stops being accepted.
	PreviousUntil time.Time `json:"previous_until"`
}

// RotateSecret replaces the cluster secret by a new random one. The
// replaced secret (and earlier ones still in their window) stays accepted
// by every node until window has passed (0: DefaultSecretWindow; at most
// MaxSecretWindow); no node needs a restart. Give the returned token to
// joiners and, before the window ends, to every node's
// Options.ClusterToken (a node uses its own only to join). Concurrent
// rotations are serialized by etcd (compare-and-swap on the record). It
// fails with ErrNotStarted before Start, ErrUnauthorized on a node without
// a ClusterToken, ErrInvalidOptions for a bad window.
func (ck *ClusterKit) RotateSecret(ctx context.Context, window time.Duration) (SecretRotation, error) {
	if window == 0 {
		window = DefaultSecretWindow
	}
	if window < 0 || window > MaxSecretWindow {
		return SecretRotation{}, invalid("window", fmt.Sprintf("must be between 0 and %v", MaxSecretWindow), window)
	}
	r := ck.active.Load()
	if !ck.started.Load() || r == nil || r.ctx.Err() != nil {
		return SecretRotation{}, ErrNotStarted
	}
	own := ck.clusterSecret()
	if own == "" {
		return SecretRotation{}, fmt.Errorf("%w: rotate secret: this node has no ClusterToken", ErrUnauthorized)
	}
	secret, err := pki.NewSecret()
	if err != nil {
		return SecretRotation{}, err
	}
	for attempt := 0; ; attempt++ {
		rec, rev, err := ck.readSecrets(ctx)
		if err != nil {
			return SecretRotation{}, err
		}
		now := time.Now()
		next := rotated(rec, hashSecret(own), hashSecret(secret), now, window)
		b, _ := json.Marshal(next)
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := r.cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(ck.keys.secrets()), "=", rev)).
			Then(clientv3.OpPut(ck.keys.secrets(), string(b))).Commit()
		cancel()
		if err != nil {
			return SecretRotation{}, fmt.Errorf("clusterkit: rotate secret: %w", err)
		}
		if resp.Succeeded {
			ck.log.Info("cluster secret rotated", zap.Time("previous_until", now.Add(window)))
			return SecretRotation{Token: ck.tokenFor(secret), PreviousUntil: now.Add(window)}, nil
		}
		if attempt == 3 || ctx.Err() != nil {
			return SecretRotation{}, errors.Join(fmt.Errorf("clusterkit: rotate secret: the record kept changing"), ctx.Err())
		}
	}
}

// rotated returns the record after a rotation to newHash: the secret it
// replaces (the recorded current one, or ownHash before the first
// rotation) is accepted until now+window, earlier ones keep their own
// end, expired ones are dropped.
func rotated(rec *secretsRecord, ownHash, newHash string, now time.Time, window time.Duration) secretsRecord {
	next := secretsRecord{Current: newHash, RotatedAt: now}
	old := ownHash
	if rec != nil {
		old = rec.Current
	}
	next.Previous = append(next.Previous, previousSecret{Hash: old, Until: now.Add(window)})
	if rec != nil {
		for _, p := range rec.Previous {
			if now.Before(p.Until) && p.Hash != old && len(next.Previous) < maxPreviousSecrets {
				next.Previous = append(next.Previous, p)
			}
		}
	}
	return next
}

// tokenFor formats secret as a join token pinning the cluster CA this node
// keeps in DataDir/tls, or as a plain secret when it keeps none.
func (ck *ClusterKit) tokenFor(secret string) string {
	pin, err := tlsDir(&ck.opts).CAFingerprint()
	if err != nil {
		pin = ""
	}
	return pki.Token{Pin: pin, Secret: secret}.String()
}

// checkCurrentSecret fails with ErrUnauthorized when a rotation recorded
// in etcd made own (this node's secret) stale.
func (ck *ClusterKit) checkCurrentSecret(own string) error {
	rec, _, err := ck.readSecrets(context.Background())
	if err != nil {
		return err
	}
	if rec != nil && hashSecret(own) != rec.Current {
		return fmt.Errorf("%w: join token: the cluster secret was rotated at %s and this node's ClusterToken is not the current one; use the token the rotation printed",
			ErrUnauthorized, rec.RotatedAt.Format(time.RFC3339))
	}
	return nil
}

// currentToken is the join token GET /cluster/token answers with: in
// secure embedded mode JoinToken's; otherwise this node's secret, pinned
// when DataDir/tls holds a CA certificate (tokenFor), with the same
// rotation check.
func (ck *ClusterKit) currentToken() (string, error) {
	if ck.opts.secure() {
		return ck.JoinToken()
	}
	own := ck.clusterSecret()
	if own == "" {
		return "", fmt.Errorf("%w: join token: this node has no ClusterToken", ErrUnauthorized)
	}
	if err := ck.checkCurrentSecret(own); err != nil {
		return "", err
	}
	return ck.tokenFor(own), nil
}
