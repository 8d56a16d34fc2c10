//go:build browser

package dashboard_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
)

var updateScreenshot = flag.Bool("update-screenshot", false,
	"also write the browser test's screenshot to docs/dashboard.png (the README's picture)")

// joinBound is how long the page may take to show a member that the node
// it polls already knows: a failure bound (a 500 ms poll plus a render),
// not a performance target.
const joinBound = time.Second

// pageProbe runs before the page's own scripts: it records uncaught errors
// and Content-Security-Policy violations (a blocked script or style) for
// the test to check.
const pageProbe = `
window.__problems = [];
window.addEventListener('error', (e) => window.__problems.push('error: ' + e.message));
window.addEventListener('unhandledrejection', (e) => window.__problems.push('rejection: ' + e.reason));
document.addEventListener('securitypolicyviolation', (e) => window.__problems.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));
`

// newBrowser starts headless Chromium for the test and returns a tab's
// context; the browser is stopped by t.Cleanup.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the dashboard test drives a real headless Chromium, and none is installed (%v): install it, e.g. `apt-get install -y chromium` on Debian", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests may run as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
		chromedp.UserDataDir(t.TempDir()),
		// The nodes serve the cluster's own certificate (a private CA the
		// browser does not know); the admin operations need https.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // kills the browser and waits for it
	})
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: pageProbe}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// waitJS waits until the JavaScript expression is truthy (checked on every
// DOM change and at least every 50 ms), failing the test after timeout.
func waitJS(t testing.TB, ctx context.Context, timeout time.Duration, expr, what string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		t.Fatalf("after %v the page does not show %s (%s): %v\npage status: %s", timeout, what, expr, err, pageState(ctx))
	}
}

// evalJS evaluates expr in the page and returns its value.
func evalJS[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// pageState summarizes what the page shows, for failure messages.
func pageState(ctx context.Context) string {
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[
		'live: ' + document.getElementById('live').textContent,
		'members: ' + [...document.querySelectorAll('#members tbody tr')].map((r) => r.dataset.node).join(','),
		'op: ' + document.getElementById('op-status').textContent,
		'problems: ' + (window.__problems || []).join('; '),
	].join(' | ')`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

func memberRows(t *testing.T, ctx context.Context) string {
	return evalJS[string](t, ctx, `[...document.querySelectorAll('#members tbody tr')].map((r) => r.dataset.node).join(',')`)
}

// TestDashboardInBrowser loads the page from a real 3-node cluster in
// headless Chromium and checks that it shows the cluster, follows a join
// live, draws the partition grid with its hover details, and runs the
// rebalance, maintenance, drain, uncordon and remove operations with the
// token.
func TestDashboardInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	nodes := clustertest.Form(t, 3, func(o *clusterkit.Options) { o.PartitionCount = 64 }, nil)
	url := "https://" + clustertest.Addr(nodes[0]) + "/ui/" // the token is refused over plain http
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}

	// The page loads and shows the three nodes and the leader.
	waitJS(t, ctx, 15*time.Second, `document.querySelectorAll('#members tbody tr').length === 3`, "three members")
	if got, want := memberRows(t, ctx), "node-1,node-2,node-3"; got != want {
		t.Fatalf("member rows: got %s, want %s", got, want)
	}
	leader := nodes[0].GetCluster().Leader
	waitJS(t, ctx, 5*time.Second, `document.getElementById('leader').textContent === '`+leader+`'`, "the leader "+leader)
	waitJS(t, ctx, 5*time.Second, `document.getElementById('health-status').textContent === 'healthy'`, "health: healthy")
	if got := evalJS[string](t, ctx, `document.getElementById('grid').dataset.parts`); got != "64" {
		t.Fatalf("partition grid columns: got %s, want 64", got)
	}

	// A fourth node joins, and its handoffs wait until the test releases
	// them: the page shows the node soon after the node it polls knows
	// it, then its incoming partitions and the rebalance in progress. The
	// handoff of the first partition it receives fails instead (until
	// failFirst is cleared).
	release := make(chan struct{})
	var failFirst atomic.Bool
	var first atomic.Int64 // 1 + the partition whose handoff fails; 0: none yet
	failFirst.Store(true)
	o := clustertest.Options(t, "node-4")
	o.PartitionCount = 64
	o.HandoffTimeout = 300 * time.Millisecond
	o.JoinAddr = clustertest.Addr(nodes[0])
	nodes = append(nodes, clustertest.Start(t, o, func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			if e.CopyToNode.ID != "node-4" || !failFirst.Load() {
				return nil
			}
			if first.CompareAndSwap(0, int64(e.PartitionIndex)+1) || first.Load() == int64(e.PartitionIndex)+1 {
				return errors.New("disk full")
			}
			return nil
		})
		clustertest.HoldHandoffs(ck, release)
	}))
	started := time.Now()
	clustertest.Eventually(t, 10*time.Second, func() bool { return nodes[0].GetCluster().NodeAddr("node-4") != "" },
		"node-1 never saw node-4 as a member")
	known := time.Now()
	waitJS(t, ctx, joinBound, `!!document.querySelector('#members tr[data-node="node-4"]')`, "node-4's row")
	t.Logf("node-4 on the page %v after its Start returned, %v after node-1 knew it",
		time.Since(started).Round(time.Millisecond), time.Since(known).Round(time.Millisecond))
	var incoming clusterkit.Partition
	clustertest.Eventually(t, 30*time.Second, func() bool {
		for _, p := range nodes[0].GetCluster().Partitions {
			if slices.Contains(p.IncomingNodes, "node-4") {
				incoming = p
				return true
			}
		}
		return false
	}, "node-4 was never planned to receive a partition")
	waitJS(t, ctx, 5*time.Second, `document.getElementById('grid').dataset.rows === 'node-1,node-2,node-3,node-4'`, "node-4's grid row")
	waitJS(t, ctx, 5*time.Second, `document.getElementById('rebalance-current').textContent.startsWith('in progress: ')`, "the rebalance in progress")
	waitJS(t, ctx, 5*time.Second, `+document.querySelector('#members tr[data-node="node-4"] td.incoming')?.textContent > 0`, "node-4's incoming partitions")

	// Hovering the cell of a partition node-4 receives shows its nodes
	// and epoch.
	hoverCell(t, ctx, incoming.Index, "node-4")
	tip := evalJS[string](t, ctx, `document.getElementById('grid-tip').hidden ? '' : document.getElementById('grid-tip').textContent`)
	for _, want := range []string{incoming.ID + " · epoch ", "node-4: incoming", "primary " + incoming.PrimaryNode} {
		if !strings.Contains(tip, want) {
			t.Fatalf("hover tip over %s × node-4: got %q, want it to contain %q", incoming.ID, tip, want)
		}
	}
	saveScreenshot(t, ctx)

	// node-1's page lists node-4's failing handoff, stuck, and cancels it
	// from there: it leaves the list.
	clustertest.Eventually(t, 10*time.Second, func() bool { return first.Load() > 0 }, "node-4's handoff never failed")
	failed := strconv.Itoa(int(first.Load() - 1))
	row := `#handoffs li[data-partition="` + failed + `"][data-node="node-4"]`
	waitJS(t, ctx, 10*time.Second, `document.querySelector('`+row+`')?.textContent.includes('(STUCK): disk full')`, "node-4's stuck handoff")
	setToken := func(tok string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('token').value = ''`), chromedp.SendKeys(chromedp.ID("token"), tok)); err != nil {
			t.Fatalf("type the token: %v", err)
		}
	}
	setToken("test-token")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(row+` button[data-action="cancel-handoff"]`))); err != nil {
		t.Fatalf("click Cancel: %v", err)
	}
	waitJS(t, ctx, 20*time.Second, `document.getElementById('op-status').textContent.startsWith('cancel handoff of partition-`+failed+`: done')`, "the cancelled handoff")
	waitJS(t, ctx, 10*time.Second, `!document.querySelector('#handoffs li')`, "no failing handoff")
	failFirst.Store(false)
	setToken("")

	// Released, the handoffs finish: the page shows the settled map and
	// the rebalance it saw.
	close(release)
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "4 nodes never agreed on one map")
	waitJS(t, ctx, 5*time.Second, `document.getElementById('rebalance-current').textContent.startsWith('settled')`, "the settled map")
	waitJS(t, ctx, 5*time.Second, `/^last: [1-9][0-9]* handoffs, map v/.test(document.getElementById('rebalance-last').textContent)`, "the last rebalance")

	// Rebalance: refused without a token, with a wrong one, started with
	// the cluster's.
	click := func(sel string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatalf("click %s: %v", sel, err)
		}
	}
	opStatus := func(prefix string) string {
		return `document.getElementById('op-status').textContent.startsWith(` + jsString(prefix) + `)`
	}
	click("#rebalance-button")
	waitJS(t, ctx, 5*time.Second, opStatus("rebalance: type the cluster token first"), "the missing token")
	setToken("wrong-token")
	click("#rebalance-button")
	waitJS(t, ctx, 20*time.Second, opStatus("rebalance failed: 401: missing or wrong cluster token"), "the refused token")
	setToken("test-token")
	click("#rebalance-button")
	waitJS(t, ctx, 20*time.Second, opStatus("rebalance: started"), "the started rebalance")

	// Maintenance mode on and off from the page.
	click("#maintenance-on")
	waitJS(t, ctx, 20*time.Second, opStatus("maintenance on: done"), "maintenance turned on")
	waitJS(t, ctx, 5*time.Second, `document.getElementById('maintenance').textContent.startsWith('ON: turned on by an operator')`, "maintenance mode shown")
	click("#maintenance-off")
	waitJS(t, ctx, 20*time.Second, opStatus("maintenance off: done"), "maintenance turned off")
	waitJS(t, ctx, 5*time.Second, `document.getElementById('maintenance').textContent === 'off'`, "maintenance mode off")

	// The members show their etcd role; node-1 bootstrapped etcd, so it is
	// a voter.
	waitJS(t, ctx, 10*time.Second, `document.querySelector('#members tr[data-node="node-1"] td.etcd').textContent === 'voter'`, "node-1's etcd role")

	// Drain node-3 from its row: its partitions move to the others (node-4
	// among them), the page shows the progress and then "drained".
	before := len(nodes[0].GetPartitionsForNode("node-4"))
	click(`#members tr[data-node="node-3"] button[data-action="drain"]`)
	waitJS(t, ctx, 20*time.Second, opStatus("drain node-3: done"), "the drain started")
	clustertest.Eventually(t, 30*time.Second, func() bool {
		return len(nodes[0].GetPartitionsForNode("node-3")) == 0 && len(nodes[0].GetPartitionsForNode("node-4")) > before
	}, "the drain from the page never moved node-3's partitions (node-4 had %d)", before)
	waitJS(t, ctx, 10*time.Second, `document.querySelector('#members tr[data-node="node-3"] td.operator').textContent === 'drained'`, "node-3 drained")
	// Cancel it: the row offers Drain again.
	click(`#members tr[data-node="node-3"] button[data-action="uncordon"]`)
	waitJS(t, ctx, 20*time.Second, opStatus("uncordon node-3: done"), "the drain cancelled")
	waitJS(t, ctx, 10*time.Second, `!!document.querySelector('#members tr[data-node="node-3"] button[data-action="drain"]')`, "node-3's Drain button back")

	// Remove node-4 from its row: the first click arms the button, the
	// second removes the node; the cluster and the page drop it.
	removeBtn := `#members tr[data-node="node-4"] button[data-action="remove"]`
	click(removeBtn)
	waitJS(t, ctx, 5*time.Second, `document.querySelector('`+removeBtn+`').textContent === 'Confirm remove node-4'`, "the armed remove button")
	click(removeBtn)
	waitJS(t, ctx, 20*time.Second, opStatus("remove node-4: removed"), "node-4 removed")
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes[:3]...) }, "node-4 was not removed from the cluster")
	waitJS(t, ctx, 5*time.Second, `!document.querySelector('#members tr[data-node="node-4"]')`, "node-4 gone")

	if got := evalJS[string](t, ctx, `window.__problems.join('; ')`); got != "" {
		t.Fatalf("the page reported errors: %s", got)
	}
}

// hoverCell moves the mouse over the grid cell of partition col in node's
// row.
func hoverCell(t *testing.T, ctx context.Context, col int, node string) {
	t.Helper()
	type point struct{ X, Y float64 }
	p := evalJS[point](t, ctx, `(() => {
		const c = document.getElementById('grid');
		c.scrollIntoView({block: 'center'});
		const r = c.getBoundingClientRect(), d = c.dataset;
		const row = d.rows.split(',').indexOf(`+jsString(node)+`);
		return {X: r.left + +d.labelW + (`+strconv.Itoa(col)+` + 0.5) * +d.cellW,
		        Y: r.top + +d.headerH + (row + 0.5) * +d.cellH};
	})()`)
	if err := chromedp.Do(ctx, chromedp.MouseEvent(chromedp.MouseMoved, p.X, p.Y)); err != nil {
		t.Fatalf("move the mouse: %v", err)
	}
	waitJS(t, ctx, 5*time.Second, `!document.getElementById('grid-tip').hidden`, "the hover tip")
}

// saveScreenshot writes the page as a PNG into a new temp dir it keeps
// (for a person or CI to look at) and, with -update-screenshot, to
// docs/dashboard.png.
func saveScreenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir, err := os.MkdirTemp("", "clusterkit-dashboard-")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", file)
	if *updateScreenshot {
		docs := filepath.Join("..", "..", "..", "docs", "dashboard.png")
		if err := os.MkdirAll(filepath.Dir(docs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(docs, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot also written to %s", docs)
	}
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
