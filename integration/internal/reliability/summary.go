// Package reliability is how the fault tests publish their figures: each
// test writes one machine-readable summary line (Summary), and the
// integration/reliability command assembles RELIABILITY.md from the
// summary lines of a `go test -json` run, so that no figure in that file
// is typed by hand.
package reliability

import (
	"encoding/json"
	"slices"
	"time"
)

// Prefix starts every summary line in a test's output.
const Prefix = "RELIABILITY "

// Logger is the part of testing.TB that Summary uses.
type Logger interface {
	Helper()
	Logf(format string, args ...any)
}

// Summary logs one line: Prefix and figures as a JSON object. Durations
// are written in seconds (rounded to milliseconds); keep the keys short and
// stable, the generator prints them as they are.
func Summary(t Logger, figures map[string]any) {
	t.Helper()
	out := make(map[string]any, len(figures))
	for k, v := range figures {
		switch d := v.(type) {
		case time.Duration:
			out[k] = Seconds(d)
		case []time.Duration:
			out[k] = Spread(d)
		default:
			out[k] = v
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Logf("%s{\"error\":%q}", Prefix, err.Error())
		return
	}
	t.Logf("%s%s", Prefix, b)
}

// Seconds rounds d to milliseconds and returns it in seconds.
func Seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

// Spread summarizes durations as seconds: median, minimum, maximum and
// count ("n").
func Spread(ds []time.Duration) map[string]float64 {
	if len(ds) == 0 {
		return map[string]float64{"n": 0}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return map[string]float64{
		"median": Seconds(s[len(s)/2]),
		"min":    Seconds(s[0]),
		"max":    Seconds(s[len(s)-1]),
		"n":      float64(len(s)),
	}
}
