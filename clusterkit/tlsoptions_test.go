package clusterkit_test

import (
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// companyFiles issues a certificate of ca for name into dir and returns
// the certificate, key and CA file names.
func companyFiles(t *testing.T, ca *pki.CA, name string) (certFile, keyFile, caFile string) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(name, nil, pki.CertValidity, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d := pki.Dir(filepath.Join(t.TempDir(), name))
	if err := d.WriteNode(ca.CertPEM(), certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return d.Path(pki.CertFile), d.Path(pki.KeyFile), d.Path(pki.CAFile)
}

func TestHTTPTLSReplacesTheClusterCertificateButNotForJoins(t *testing.T) {
	company, err := pki.NewCA("company", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile := companyFiles(t, company, "api")
	nodes := clustertest.Form(t, 2, func(o *clusterkit.Options) {
		if o.NodeID == "node-1" {
			o.HTTPTLS = &clusterkit.HTTPTLSOptions{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}
		}
	}, nil)
	addr := clustertest.Addr(nodes[0])

	resp, err := http.Get("http://" + addr + "/health")
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP with HTTPTLS: %v, %v; want 400", resp, err)
	}
	resp.Body.Close()

	clientCert, clientKey, _ := companyFiles(t, company, "operator")
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: company.Pool(), Certificates: []tls.Certificate{pair}}}}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: company.Pool()}}}
	defer withCert.CloseIdleConnections()
	resp, err = withCert.Get("https://" + addr + "/cluster")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("https with the company CA and a client certificate: %v, %v; want 200", resp, err)
	}
	resp.Body.Close()
	if resp, err := noCert.Get("https://" + addr + "/cluster"); err == nil {
		resp.Body.Close()
		t.Fatal("https without a client certificate was served; ClientCAFile requires one")
	}
	status, body := post(t, withCert, "https://"+addr+"/rebalance", clustertest.JoinToken(t, nodes[0]), "")
	if status != http.StatusAccepted {
		t.Fatalf("admin call over HTTPTLS: %d %s; want 202", status, body)
	}
}

func TestInsecurePlaintextRunsWithoutTLS(t *testing.T) {
	nodes := clustertest.Form(t, 2, func(o *clusterkit.Options) {
		o.InsecurePlaintext = true
		o.ClusterToken = "test-token"
	}, nil)
	if _, err := nodes[0].JoinToken(); !errors.Is(err, clusterkit.ErrTLS) {
		t.Fatalf("JoinToken with InsecurePlaintext: %v, want ErrTLS", err)
	}
	resp, body := call(t, nodes[1], http.MethodPost, "/rebalance", "", "Authorization", "Bearer "+testToken)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("admin call over plain HTTP with InsecurePlaintext: %d %s; want 202", resp.StatusCode, body)
	}
}

func TestSecurityOptionsValidation(t *testing.T) {
	pin := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, field string
		edit        func(o *clusterkit.Options)
	}{
		{"malformed ck1 token", "ClusterToken", func(o *clusterkit.Options) { o.ClusterToken = "ck1.nothex.s" }},
		{"ck1 token without secret", "ClusterToken", func(o *clusterkit.Options) { o.ClusterToken = "ck1." + pin }},
		{"joiner without token", "ClusterToken", func(o *clusterkit.Options) { o.ClusterToken, o.JoinAddr = "", "127.0.0.1:1" }},
		{"HTTPTLS without key", "HTTPTLS", func(o *clusterkit.Options) { o.HTTPTLS = &clusterkit.HTTPTLSOptions{CertFile: "a.crt"} }},
		{"HTTPTLS missing files", "HTTPTLS.CertFile", func(o *clusterkit.Options) {
			o.HTTPTLS = &clusterkit.HTTPTLSOptions{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}
		}},
		{"HTTPTLS client CA not PEM", "HTTPTLS.ClientCAFile", func(o *clusterkit.Options) {
			ca, _ := pki.NewCA("x", time.Now())
			c, k, _ := companyFiles(t, ca, "api")
			o.HTTPTLS = &clusterkit.HTTPTLSOptions{CertFile: c, KeyFile: k, ClientCAFile: k}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := clustertest.Options(t, "n")
			tc.edit(&o)
			_, err := clusterkit.New(o)
			if !errors.Is(err, clusterkit.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("New: %v; want ErrInvalidOptions naming %s", err, tc.field)
			}
			if strings.Contains(err.Error(), pin) {
				t.Fatalf("the error prints the token: %v", err)
			}
		})
	}
	// A joiner without a token is fine once DataDir/tls holds its certificate.
	o := clustertest.Options(t, "n")
	o.ClusterToken, o.JoinAddr = "", "127.0.0.1:1"
	ca, _ := pki.NewCA("x", time.Now())
	c, k, _ := companyFiles(t, ca, "n")
	d := pki.Dir(filepath.Join(o.DataDir, "tls"))
	cb, _ := os.ReadFile(c)
	kb, _ := os.ReadFile(k)
	if err := d.WriteNode(ca.CertPEM(), cb, kb); err != nil {
		t.Fatal(err)
	}
	if _, err := clusterkit.New(o); err != nil {
		t.Fatalf("New of a joiner with a stored certificate and no token: %v", err)
	}
}
