package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// copyBatch is how many streamed entries are merged under one lock.
const copyBatch = 256

// onPartitionChange copies a partition this node gains from a node that
// serves it; until it returns nil, ClusterKit keeps the partition served
// by its old replicas (and retries an error with backoff). Writes that
// the primary replicates to this node meanwhile and the streamed copy are
// merged by version, in whatever order they arrive, so the copy never
// overwrites a newer write. A promotion (this node already held the
// partition) copies nothing; neither does a partition without a source —
// the primary's take-over then collects what any live node still holds.
func (s *Store) onPartitionChange(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
	if e.CopyToNode == nil || e.CopyToNode.ID != s.me || e.Promoted {
		return nil
	}
	if e.NoSource {
		s.log.Warn("partition has no source; the next take-over collects what live nodes hold",
			zap.String("partition", e.PartitionID), zap.String("reason", string(e.ChangeReason)))
		return nil
	}
	var errs []error
	for _, src := range e.CopyFromNodes {
		if src.ID == s.me {
			continue
		}
		n, err := s.copyPartition(ctx, src.Services[ServiceName], e.PartitionIndex)
		if err == nil {
			s.log.Info("copied partition", zap.String("partition", e.PartitionID), zap.String("from", src.ID),
				zap.Int("entries", n), zap.String("reason", string(e.ChangeReason)))
			return nil
		}
		errs = append(errs, fmt.Errorf("from %s: %w", src.ID, err))
	}
	return errors.Join(errs...)
}

// copyPartition streams partition i from the store at addr and merges it.
func (s *Store) copyPartition(ctx context.Context, addr string, i int) (int, error) {
	if addr == "" {
		return 0, errors.New("no store address")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/internal/partition/"+strconv.Itoa(i), nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.peers.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("%s: %s", resp.Status, msg)
	}
	pt := s.parts[i]
	dec := json.NewDecoder(resp.Body)
	batch := make([]keyEntry, 0, copyBatch)
	flush := func() {
		pt.mu.Lock()
		for _, ke := range batch {
			pt.mergeLocked(ke.Key, ke.Entry)
		}
		pt.mu.Unlock()
		batch = batch[:0]
	}
	n := 0
	for {
		var ke keyEntry
		if err := dec.Decode(&ke); err == io.EOF {
			break
		} else if err != nil {
			flush() // what arrived is as good as any replicated write
			return n, err
		}
		batch = append(batch, ke)
		n++
		if len(batch) == copyBatch {
			flush()
		}
	}
	flush()
	return n, nil
}
