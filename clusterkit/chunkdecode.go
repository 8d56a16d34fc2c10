package clusterkit

import (
	"bytes"
	"encoding/json"
)

// unmarshalChunk decodes a map chunk's value (wireChunk) exactly as
// json.Unmarshal does: the same value when it succeeds, an error when it
// fails. Values in the form the leader writes (an object of the keys "v"
// and "p", each at most once, holding integers and arrays of arrays of
// integers) are parsed by hand, without reflection and with three
// allocations per chunk; anything else (null, other keys, escapes,
// fractions, exponents, integers out of range, malformed input) goes to
// json.Unmarshal, which then decides and names the error. Every follower
// decodes every chunk written, so this is on the path of every map change.
func unmarshalChunk(b []byte, w *wireChunk) error {
	if fastChunk(b, w) {
		return nil
	}
	*w = wireChunk{}
	return json.Unmarshal(b, w)
}

// fastChunk parses b into w when b is in the leader's form and reports
// whether it did; on false w may hold a partial value.
func fastChunk(b []byte, w *wireChunk) bool {
	p := chunkParser{b: b}
	if !p.byte('{') {
		return false
	}
	var sawV, sawP bool
	if p.byte('}') { // {}
		p.space()
		return p.i == len(p.b)
	}
	for {
		switch {
		case !sawV && p.literal(`"v"`):
			sawV = true
			if !p.byte(':') {
				return false
			}
			v, ok := p.int()
			if !ok {
				return false
			}
			w.Tag = v
		case !sawP && p.literal(`"p"`):
			sawP = true
			if !p.byte(':') || !p.arrays(w) {
				return false
			}
		default:
			return false
		}
		if p.byte(',') {
			continue
		}
		break
	}
	if !p.byte('}') {
		return false
	}
	p.space()
	return p.i == len(p.b)
}

// chunkParser is a cursor over one chunk value.
type chunkParser struct {
	b    []byte
	i    int
	flat []int64 // every integer of "p", in order
}

// space skips JSON whitespace.
func (p *chunkParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c (after whitespace) if it comes next.
func (p *chunkParser) byte(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// literal consumes s (after whitespace) if it comes next.
func (p *chunkParser) literal(s string) bool {
	p.space()
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// int parses a JSON integer that fits an int64 and is followed by a
// delimiter (not by a fraction or an exponent, which json.Unmarshal
// rejects for an int64 and this parser leaves to it).
func (p *chunkParser) int() (int64, bool) {
	p.space()
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - digits
	if n == 0 || (n > 1 && p.b[digits] == '0') || n > 19 {
		return 0, false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r', ',', ']', '}', '"':
		default:
			return 0, false
		}
	}
	// At most 19 digits: accumulate in a uint64 (no overflow), then check
	// the int64 range.
	var u uint64
	for _, d := range p.b[digits:p.i] {
		u = u*10 + uint64(d-'0')
	}
	if digits > start { // negative
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// arrays parses "p": an array of arrays of integers, into w.P. The inner
// arrays share one backing array, each capped at its length.
func (p *chunkParser) arrays(w *wireChunk) bool {
	if !p.byte('[') {
		return false
	}
	ends := make([]int, 0, chunkPartitions)
	p.flat = make([]int64, 0, len(p.b)/2)
	if !p.byte(']') {
		for {
			if !p.byte('[') {
				return false
			}
			if !p.byte(']') {
				for {
					v, ok := p.int()
					if !ok {
						return false
					}
					p.flat = append(p.flat, v)
					if !p.byte(',') {
						break
					}
				}
				if !p.byte(']') {
					return false
				}
			}
			ends = append(ends, len(p.flat))
			if !p.byte(',') {
				break
			}
		}
		if !p.byte(']') {
			return false
		}
	}
	w.P = make([][]int64, len(ends))
	lo := 0
	for i, hi := range ends {
		w.P[i] = p.flat[lo:hi:hi]
		if w.P[i] == nil {
			w.P[i] = []int64{}
		}
		lo = hi
	}
	return true
}

// unmarshalReadyMap decodes a ready record's value (a JSON object of
// partition index → map version) exactly as json.Unmarshal into a
// map[int]int64 does. Values in the form json.Marshal writes (keys that
// are decimal integers without a plus sign or leading zeros, integer
// values) are parsed by hand; anything else goes to json.Unmarshal. The
// leader decodes each node's ready record once per change (readyCache).
func unmarshalReadyMap(b []byte) (map[int]int64, error) {
	if m, ok := fastReady(b); ok {
		return m, nil
	}
	var m map[int]int64
	err := json.Unmarshal(b, &m)
	return m, err
}

// fastReady parses b when it is in json.Marshal's form of a
// map[int]int64 and reports whether it did.
func fastReady(b []byte) (map[int]int64, bool) {
	p := chunkParser{b: b}
	if !p.byte('{') {
		return nil, false
	}
	m := make(map[int]int64, bytes.Count(b, []byte{':'})) // one per entry
	if !p.byte('}') {
		for {
			// The key is the digits right inside the quotes (int would
			// skip leading whitespace, which json.Unmarshal rejects there).
			if !p.byte('"') || p.i >= len(p.b) || (p.b[p.i] != '-' && (p.b[p.i] < '0' || p.b[p.i] > '9')) {
				return nil, false
			}
			k, ok := p.int()
			if !ok || p.i >= len(p.b) || p.b[p.i] != '"' {
				return nil, false
			}
			p.i++
			if !p.byte(':') {
				return nil, false
			}
			v, ok := p.int()
			if !ok {
				return nil, false
			}
			m[int(k)] = v
			if !p.byte(',') {
				break
			}
		}
		if !p.byte('}') {
			return nil, false
		}
	}
	p.space()
	return m, p.i == len(p.b)
}
