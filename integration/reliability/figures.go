package main

import (
	"fmt"
	"sort"
	"strings"
)

// figures renders a summary line's figures: "key: value" joined by "; ",
// keys sorted; a spread ({median, min, max, n}) as "median (min–max, n=N)".
func figures(o *outcome) string {
	if o == nil || o.figures == nil {
		return "—"
	}
	keys := make([]string, 0, len(o.figures))
	for k := range o.figures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %s", strings.ReplaceAll(k, "_", " "), value(o.figures[k])))
	}
	return strings.Join(parts, "; ")
}

func value(v any) string {
	switch x := v.(type) {
	case map[string]any:
		n, _ := x["n"].(float64)
		if n == 0 {
			return "none"
		}
		if n == 1 {
			return fmt.Sprintf("%v", x["median"])
		}
		return fmt.Sprintf("%v (%v–%v, n=%v)", x["median"], x["min"], x["max"], x["n"])
	case float64:
		return fmt.Sprintf("%v", x)
	default:
		return fmt.Sprintf("%v", x)
	}
}
