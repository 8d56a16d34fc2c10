package store

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
)

// maxPeerBody bounds a call between nodes (a sync carries a partition).
const maxPeerBody = 256 << 20

func (s *Store) registerPeerAPI(mux *http.ServeMux) {
	mux.HandleFunc("POST "+pathReplicate, s.handleReplicate)
	mux.HandleFunc("POST "+pathCheck, s.handleCheck)
	mux.HandleFunc("POST "+pathFence, s.handleFence)
	mux.HandleFunc("POST "+pathSync, s.handleSync)
	mux.HandleFunc("GET "+pathStream, s.handleStream)
}

// handleReplicate takes one write from a primary, unless its epoch is
// older than the newest this node knows.
func (s *Store) handleReplicate(w http.ResponseWriter, r *http.Request) {
	var req replicateRequest
	if readJSON(w, r, &req) {
		s.admitKey(w, checkRequest{Partition: req.Partition, Epoch: req.Epoch, Key: req.Key}, &req.Entry)
	}
}

// handleCheck vouches that a read's epoch is still the newest this node
// knows.
func (s *Store) handleCheck(w http.ResponseWriter, r *http.Request) {
	var req checkRequest
	if readJSON(w, r, &req) {
		s.admitKey(w, req, nil)
	}
}

// admitKey applies the epoch rule to a message about one key, merges e
// (if not nil) when the message is admitted, and answers.
func (s *Store) admitKey(w http.ResponseWriter, req checkRequest, e *Entry) {
	pt, mapEpoch, ok := s.partitionOfKey(w, req.Partition, req.Key)
	if !ok {
		return
	}
	pt.mu.Lock()
	newest, ok := pt.admitLocked(req.Epoch, mapEpoch)
	if ok && e != nil {
		pt.mergeLocked(req.Key, *e)
	}
	pt.mu.Unlock()
	answer(w, newest, ok, nil)
}

// handleFence records a new primary's epoch (older ones are refused from
// now on) and answers with everything this node holds of the partition.
func (s *Store) handleFence(w http.ResponseWriter, r *http.Request) {
	var req fenceRequest
	if !readJSON(w, r, &req) {
		return
	}
	pt, mapEpoch, ok := s.partitionOfIndex(w, req.Partition)
	if !ok {
		return
	}
	entries, newest, ok := s.fence(pt, req.Epoch, mapEpoch)
	answer(w, newest, ok, fenceResponse{Entries: entries})
}

// handleSync merges a new primary's copy of the partition.
func (s *Store) handleSync(w http.ResponseWriter, r *http.Request) {
	var req syncRequest
	if !readJSON(w, r, &req) {
		return
	}
	pt, mapEpoch, ok := s.partitionOfIndex(w, req.Partition)
	if !ok {
		return
	}
	pt.mu.Lock()
	newest, ok := pt.admitLocked(req.Epoch, mapEpoch)
	if ok {
		for k, e := range req.Entries {
			pt.mergeLocked(k, e)
		}
	}
	pt.mu.Unlock()
	answer(w, newest, ok, nil)
}

// handleStream sends everything this node holds of a partition, one
// keyEntry per line, for a node that gains the partition.
func (s *Store) handleStream(w http.ResponseWriter, r *http.Request) {
	i, err := strconv.Atoi(r.PathValue("p"))
	if err != nil || i < 0 || i >= len(s.parts) {
		http.Error(w, "bad partition "+r.PathValue("p"), http.StatusBadRequest)
		return
	}
	entries := s.parts[i].snapshot()
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for k, e := range entries {
		if err := enc.Encode(keyEntry{Key: k, Entry: e}); err != nil {
			return
		}
	}
	bw.Flush()
}

// fence applies a fence of epoch e to pt and returns a copy of its
// entries, or the newest epoch known when e is older.
func (s *Store) fence(pt *partition, e, mapEpoch uint64) (map[string]Entry, uint64, bool) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	newest, ok := pt.admitLocked(e, mapEpoch)
	if !ok {
		return nil, newest, false
	}
	entries := make(map[string]Entry, len(pt.entries))
	for k, v := range pt.entries {
		entries[k] = v
	}
	return entries, newest, true
}

// partitionOfKey returns partition i and the epoch this node's map gives
// it (0 before the first map), checking that key belongs to it.
func (s *Store) partitionOfKey(w http.ResponseWriter, i int, key string) (*partition, uint64, bool) {
	if i < 0 || i >= len(s.parts) {
		http.Error(w, "bad partition "+strconv.Itoa(i), http.StatusBadRequest)
		return nil, 0, false
	}
	p, err := s.ck.GetPartition(key)
	if err != nil {
		return s.parts[i], 0, true
	}
	if p.Index != i {
		http.Error(w, "key "+strconv.Quote(key)+" is not in partition "+strconv.Itoa(i), http.StatusBadRequest)
		return nil, 0, false
	}
	return s.parts[i], p.Epoch, true
}

// partitionOfIndex returns partition i and the epoch this node's map
// gives it (0 before the first map).
func (s *Store) partitionOfIndex(w http.ResponseWriter, i int) (*partition, uint64, bool) {
	if i < 0 || i >= len(s.parts) {
		http.Error(w, "bad partition "+strconv.Itoa(i), http.StatusBadRequest)
		return nil, 0, false
	}
	var epoch uint64
	if c := s.ck.GetCluster(); i < len(c.Partitions) {
		epoch = c.Partitions[i].Epoch
	}
	return s.parts[i], epoch, true
}

// answer replies 409 with the newest epoch when ok is false, else 200
// with body (204 when body is nil).
func answer(w http.ResponseWriter, newest uint64, ok bool, body any) {
	switch {
	case !ok:
		writeJSON(w, http.StatusConflict, refusal{Newest: newest})
	case body == nil:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusOK, body)
	}
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPeerBody)).Decode(v); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}
