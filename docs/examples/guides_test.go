package examples_test

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goBlock matches a fenced ```go block of a guide.
var goBlock = regexp.MustCompile("(?ms)^```go\n(.*?)^```")

// TestGuideBlocks checks every ```go block of docs/*.md: it must parse as
// Go declarations and appear verbatim in one of this package's _test.go
// files, which `go test` compiles and whose Examples it runs. A block that
// does not compile, or that drifted from the code, fails here.
func TestGuideBlocks(t *testing.T) {
	var code strings.Builder
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example files: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code.Write(b)
	}
	guides, err := filepath.Glob("../*.md")
	if err != nil || len(guides) == 0 {
		t.Fatalf("no guides in docs/: %v", err)
	}
	blocks := 0
	for _, g := range guides {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range goBlock.FindAllStringSubmatch(string(b), -1) {
			blocks++
			name := fmt.Sprintf("%s block %d", filepath.Base(g), i+1)
			checkBlock(t, name, m[1], code.String())
		}
	}
	if blocks == 0 {
		t.Fatal("the guides have no ```go blocks")
	}
}

// checkBlock fails the test unless block parses as declarations and is
// part of code.
func checkBlock(t *testing.T, name, block, code string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), name, "package p\n"+block, parser.SkipObjectResolution)
	if err != nil {
		t.Errorf("%s: not Go declarations: %v", name, err)
		return
	}
	if len(f.Decls) == 0 {
		t.Errorf("%s: no declarations", name)
		return
	}
	if !strings.Contains(code, block) {
		t.Errorf("%s: not found verbatim in docs/examples/*_test.go; copy it from there (or change both):\n%s", name, block)
	}
}
