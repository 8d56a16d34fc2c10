package clusterkit

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// writeNodeCert stores ca's certificate (and its key when signer) and a
// certificate for name issued at issued with validity into dir.
func writeNodeCert(t *testing.T, dir pki.Dir, ca *pki.CA, name string, issued time.Time, validity time.Duration, signer bool) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(name, []string{"node.test"}, validity, issued)
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.WriteNode(ca.CertPEM(), certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if signer {
		if err := dir.WriteCA(ca); err != nil {
			t.Fatal(err)
		}
	}
}

// startTestNode starts an external-mode node on srv.
func startTestNode(t *testing.T, srv *etcdtest.Server, id, dataDir, advertise string) *ClusterKit {
	t.Helper()
	ck, err := New(Options{NodeID: id, HTTPAddr: "127.0.0.1:0", AdvertiseAddr: advertise, DataDir: dataDir,
		PartitionCount: 4, ReplicationFactor: 1, LeaseTTL: 2 * time.Second, ClusterToken: "t",
		Etcd: EtcdConfig{Endpoints: srv.Endpoints()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ck.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Stop(context.Background()) })
	return ck
}

// serveTLS serves h over TLS with cfg on a new loopback listener until the
// test ends, and returns its address.
func serveTLS(t *testing.T, h http.Handler, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go s.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// TestCertRenewalThroughMember: node-2, whose certificate has less than a
// third of its validity left and which keeps no CA key, renews it in the
// background through node-1 (found in the cluster view, serving TLS at its
// advertised address as the HTTP port does in secure mode): new files in
// its DataDir, the new certificate used by the next handshake, the metric
// showing about a year.
func TestCertRenewalThroughMember(t *testing.T) {
	srv := etcdtest.Start(t)
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := t.TempDir(), t.TempDir()
	dir1, dir2 := pki.Dir(d1+"/tls"), pki.Dir(d2+"/tls")
	writeNodeCert(t, dir1, ca, "node-1", time.Now(), pki.CertValidity, true)
	writeNodeCert(t, dir2, ca, "node-2", time.Now().Add(-50*time.Minute), time.Hour, false) // 10 of 65 min left

	h1, err := loadCertHolder(dir1)
	if err != nil {
		t.Fatal(err)
	}
	shared := h1.ServerConfig()
	shared.ClientAuth = tls.VerifyClientCertIfGiven // joiners have no certificate yet
	var n1 *ClusterKit
	n1Handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n1.Handler().ServeHTTP(w, r) })
	signerAddr := serveTLS(t, n1Handler, shared)
	n1 = startTestNode(t, srv, "node-1", d1, signerAddr)
	n2 := startTestNode(t, srv, "node-2", d2, "")

	h2, err := loadCertHolder(dir2)
	if err != nil {
		t.Fatal(err)
	}
	oldSerial := h2.Current().Leaf.SerialNumber
	if err := n2.active.Load().startCertRenewal(h2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for h2.Current().Leaf.SerialNumber.Cmp(oldSerial) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("node-2's certificate was not renewed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	leaf := h2.Current().Leaf
	if leaf.Subject.CommonName != "node-2" || time.Until(leaf.NotAfter) < pki.CertValidity-time.Hour || !strings.Contains(strings.Join(leaf.DNSNames, ","), "node.test") {
		t.Fatalf("renewed certificate: CN %q, not after %v, DNS %v", leaf.Subject.CommonName, leaf.NotAfter, leaf.DNSNames)
	}
	onDisk, _, err := dir2.LoadNode()
	if err != nil || onDisk.Leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("DataDir/tls holds serial %v (%v), want the renewed %v", onDisk.Leaf, err, leaf.SerialNumber)
	}
	if loose, err := dir2.Permissions(); err != nil || len(loose) > 0 {
		t.Fatalf("loose permissions after renewal: %v %v", loose, err)
	}
	if got := gaugeValue(t, n2, "clusterkit_certificate_expiry_seconds"); got < (pki.CertValidity - time.Hour).Seconds() {
		t.Fatalf("clusterkit_certificate_expiry_seconds = %v, want about a year", got)
	}
	// The next handshake presents the renewed certificate.
	echo := serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].SerialNumber.String())
	}), h1.ServerConfig())
	if got := tlsGet(t, h2.ClientConfig(), "https://"+echo+"/"); got != leaf.SerialNumber.String() {
		t.Fatalf("handshake presented serial %s, want the renewed %s", got, leaf.SerialNumber)
	}
	checkRenewRefusals(t, n1, ca, signerAddr, h2)
}

// checkRenewRefusals: the renewal endpoint refuses plain HTTP and a request
// for another node's name, and a certificate of another CA fails the
// handshake (the server verifies a certificate it is given).
func checkRenewRefusals(t *testing.T, n1 *ClusterKit, ca *pki.CA, signerAddr string, h2 *certHolder) {
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, "node-1", nil)
	b, _ := json.Marshal(renewRequest{CSR: string(csr)})
	body := string(b)
	if code := tlsPost(t, h2.ClientConfig(), "https://"+signerAddr+"/cluster/certificate", body); code != http.StatusForbidden {
		t.Fatalf("renewal for another name: %d, want 403", code)
	}
	if code := tlsPost(t, &tls.Config{InsecureSkipVerify: true}, "https://"+signerAddr+"/cluster/certificate", body); code != http.StatusUnauthorized {
		t.Fatalf("renewal without a client certificate: %d, want 401", code)
	}
	rec := httptest.NewRecorder()
	n1.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/cluster/certificate", strings.NewReader(body)))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("renewal over plain HTTP: %d, want 401", rec.Code)
	}
	other, _ := pki.NewCA("other", time.Now())
	certPEM, keyPEM, _ := other.Issue("node-2", nil, time.Hour, time.Now())
	pair, _ := tls.X509KeyPair(certPEM, keyPEM)
	// Forced, so that the client sends it although the server asks for
	// certificates of the cluster CA only.
	forced := pki.ClientConfig(pair, ca.Pool())
	forced.Certificates, forced.GetClientCertificate = nil, func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	if code := tlsPost(t, forced, "https://"+signerAddr+"/cluster/certificate", body); code != 0 {
		t.Fatalf("renewal with another CA's certificate: %d, want a refused handshake", code)
	}
}

// TestCertSelfRenewal: a node that keeps the CA key signs its own renewal.
func TestCertSelfRenewal(t *testing.T) {
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := pki.Dir(t.TempDir() + "/tls")
	writeNodeCert(t, dir, ca, "node-1", time.Now().Add(-50*time.Minute), time.Hour, true)
	h, err := loadCertHolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &certRenewer{dir: dir, holder: h, peers: func() []string { return nil }, log: zap.NewNop(), now: time.Now}
	if due, _ := c.due(time.Now()); !due {
		t.Fatal("a certificate with 10 of 65 minutes left is not due")
	}
	if err := c.renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	if due, left := c.due(time.Now()); due || left < pki.CertValidity-time.Hour {
		t.Fatalf("after renewal: due %v, %v left", due, left)
	}
	// Without the CA key and without members, renewal fails with ErrTLS.
	other := pki.Dir(t.TempDir() + "/tls")
	writeNodeCert(t, other, ca, "node-2", time.Now(), time.Hour, false)
	h2, _ := loadCertHolder(other)
	c2 := &certRenewer{dir: other, holder: h2, peers: func() []string { return nil }, log: zap.NewNop(), now: time.Now}
	if err := c2.renew(context.Background()); !errors.Is(err, ErrTLS) {
		t.Fatalf("renew without a signer: %v, want ErrTLS", err)
	}
}

func tlsGet(t *testing.T, cfg *tls.Config, url string) string {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// tlsPost returns the status, or 0 when the request failed (handshake).
func tlsPost(t *testing.T, cfg *tls.Config, url, body string) int {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func gaugeValue(t *testing.T, ck *ClusterKit, name string) float64 {
	t.Helper()
	mfs, err := ck.metrics.gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
