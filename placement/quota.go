package placement

import (
	"cmp"
	"math"
	"slices"
)

// zoneBounds returns, for zones of the given sizes and R replicas per
// partition, the least (lo) and most (hi) replicas of one partition that each
// zone may hold. They are the most even spread R allows: hi is min(size, L)
// and lo is min(size, L-1) for the smallest level L at which the zones can
// hold R replicas. With at least R zones L is 1: lo is 0 and hi is 1, so a
// partition's replicas are on distinct zones.
func zoneBounds(sizes []int, r int) (lo, hi []int32) {
	level := 1
	for {
		total := 0
		for _, n := range sizes {
			total += min(n, level)
		}
		if total >= r {
			break
		}
		level++
	}
	lo = make([]int32, len(sizes))
	hi = make([]int32, len(sizes))
	for z, n := range sizes {
		lo[z] = int32(min(n, level-1))
		hi[z] = int32(min(n, level))
	}
	return lo, hi
}

// lowestLevel returns the smallest λ ≥ 0 with f(λ) ≥ target, for f
// nondecreasing in λ, by bisecting the bit patterns of non-negative float64
// values (which sort like the values): at most 64 evaluations of f.
func lowestLevel(f func(float64) float64, target float64) float64 {
	lo, hi := uint64(0), math.Float64bits(math.MaxFloat64)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if f(math.Float64frombits(mid)) >= target {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return math.Float64frombits(lo)
}

// fill returns Σ min(limit, level·w[i]) over members.
func fill(w []float64, members []int32, limit, level float64) float64 {
	s := 0.0
	for _, i := range members {
		s += min(limit, level*w[i])
	}
	return s
}

// replicaShares returns each node's ideal, real-valued number of replica
// slots out of p·r, and each zone's total. Shares are proportional to weight
// (one water level λ for all nodes, share = min(p, λ·w)), except that a
// zone's total is clamped to [p·lo, p·hi], the most the zone rule lets it
// hold, the excess going to the other zones; inside a clamped zone the
// zone's total is again shared by weight with each node capped at p.
func replicaShares(w []float64, members [][]int32, lo, hi []int32, p, r int) (node, zone []float64) {
	P := float64(p)
	clampZone := func(z int, v float64) float64 {
		return min(max(v, P*float64(lo[z])), P*float64(hi[z]))
	}
	level := lowestLevel(func(l float64) float64 {
		s := 0.0
		for z, m := range members {
			s += clampZone(z, fill(w, m, P, l))
		}
		return s
	}, P*float64(r))
	node = make([]float64, len(w))
	zone = make([]float64, len(members))
	for z, m := range members {
		natural := fill(w, m, P, level)
		zone[z] = clampZone(z, natural)
		l := level
		if zone[z] != natural {
			l = lowestLevel(func(l float64) float64 { return fill(w, m, P, l) }, zone[z])
		}
		for _, i := range m {
			node[i] = min(P, l*w[i])
		}
	}
	return node, zone
}

// roundShares rounds real shares to integers summing to total, each share
// rounded down or up (so within 1 of it) and kept within [0, limit[k]]. The
// shares rounded up are chosen, in this order, among those whose holder
// already had at least the rounded-up amount (held[k] ≥ ⌈share⌉; so a node
// keeps what balance lets it keep), then by larger fraction, then by lower
// index. The result is a deterministic function of its arguments.
func roundShares(share []float64, held []int, limit []int, total int) []int {
	out := make([]int, len(share))
	sum := 0
	for k, s := range share {
		out[k] = min(max(int(math.Floor(s)), 0), limit[k])
		sum += out[k]
	}
	frac := func(k int) float64 { return share[k] - math.Floor(share[k]) }
	order := make([]int, len(share))
	for k := range order {
		order[k] = k
	}
	if sum < total {
		// Rounding up a share that is already whole would move it a full
		// unit; only floating-point error can make that necessary, so such
		// shares come last.
		key := func(k int) int {
			v := 0
			if frac(k) > 0 {
				v += 2
			}
			if held[k] > out[k] {
				v++
			}
			return v
		}
		slices.SortStableFunc(order, func(a, b int) int {
			if c := cmp.Compare(key(b), key(a)); c != 0 {
				return c
			}
			return cmp.Compare(frac(b), frac(a))
		})
		for sum < total {
			progress := false
			for _, k := range order {
				if sum == total {
					break
				}
				if out[k] < limit[k] {
					out[k]++
					sum++
					progress = true
				}
			}
			if !progress {
				break
			}
		}
	}
	if sum > total { // only from floating-point error: take from the smallest fractions
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(frac(a), frac(b)) })
		for sum > total {
			progress := false
			for _, k := range order {
				if sum == total {
					break
				}
				if out[k] > 0 {
					out[k]--
					sum--
					progress = true
				}
			}
			if !progress {
				break
			}
		}
	}
	return out
}
