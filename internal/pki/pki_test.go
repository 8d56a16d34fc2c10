package pki

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseToken(t *testing.T) {
	pin := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, in string
		want     Token
		err      bool
	}{
		{"pinned", "ck1." + pin + ".s3cret", Token{Pin: pin, Secret: "s3cret"}, false},
		{"plain", "s3cret", Token{Secret: "s3cret"}, false},
		{"empty", "", Token{}, true},
		{"no secret", "ck1." + pin, Token{}, true},
		{"empty secret", "ck1." + pin + ".", Token{}, true},
		{"short pin", "ck1.abcd.s", Token{}, true},
		{"upper pin", "ck1." + strings.ToUpper(pin) + ".s", Token{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseToken(tc.in)
			if tc.err {
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("ParseToken(%q) error = %v, want ErrInvalidToken", tc.in, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseToken(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if got.String() != tc.in {
				t.Fatalf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

// node is a CA plus one member certificate obtained through a CSR, as a
// joiner gets it, loaded back from a Dir.
func newNode(t *testing.T, ca *CA, name string) (tls.Certificate, Dir) {
	t.Helper()
	certPEM, keyPEM := signedCSR(t, ca.SignCSR, name)
	d := Dir(t.TempDir() + "/tls")
	if err := d.WriteNode(ca.CertPEM(), certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	cert, _, err := d.LoadNode()
	if err != nil {
		t.Fatal(err)
	}
	return cert, d
}

// signedCSR makes a key and a CSR for name (with two host names) and has
// sign sign it; it returns the certificate and the key in PEM.
func signedCSR(t *testing.T, sign func([]byte, time.Duration, time.Time) ([]byte, error), name string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(key, name, []string{"node.example", "10.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	if certPEM, err = sign(csr, CertValidity, time.Now()); err != nil {
		t.Fatal(err)
	}
	if keyPEM, err = EncodeKey(key); err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func TestMutualTLSAndPin(t *testing.T) {
	ca, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	serverCert, _ := newNode(t, ca, "server")
	clientCert, _ := newNode(t, ca, "client")
	strangerCert, _ := newNode(t, other, "stranger")

	addr := serveTLS(t, ServerConfig(serverCert, ca.Pool()))
	pinned := PinnedClientConfig(ca.Fingerprint())
	pinned.Certificates = []tls.Certificate{clientCert}
	wrongPin := PinnedClientConfig(other.Fingerprint())
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"member certificate", ClientConfig(clientCert, ca.Pool()), true},
		{"pinned with certificate", pinned, true},
		{"no client certificate", &tls.Config{InsecureSkipVerify: true}, false},
		{"certificate of another CA", ClientConfig(strangerCert, other.Pool()), false},
		{"wrong pin", wrongPin, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := dialTLS(addr, tc.cfg)
			if tc.ok != (err == nil) {
				t.Fatalf("dial error = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestFilesOwnerOnly(t *testing.T) {
	ca, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, d := newNode(t, ca, "n1")
	if err := d.WriteCA(ca); err != nil {
		t.Fatal(err)
	}
	loose, err := d.Permissions()
	if err != nil || len(loose) > 0 {
		t.Fatalf("Permissions() = %v, %v; want none", loose, err)
	}
	back, err := d.LoadCA()
	if err != nil || back.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("LoadCA fingerprint %v, %v; want %s", back, err, ca.Fingerprint())
	}
	if pin, err := d.CAFingerprint(); err != nil || pin != ca.Fingerprint() {
		t.Fatalf("CAFingerprint() = %s, %v", pin, err)
	}
}

func TestSignCSRRejectsGarbage(t *testing.T) {
	ca, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"", "not pem", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"} {
		if _, err := ca.SignCSR([]byte(in), CertValidity, time.Now()); !errors.Is(err, ErrInvalidCSR) {
			t.Errorf("SignCSR(%q) error = %v, want ErrInvalidCSR", in, err)
		}
	}
}

func TestExpiresIn(t *testing.T) {
	ca, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := newNode(t, ca, "n1")
	left, err := ExpiresIn(cert, time.Now())
	if err != nil || left < CertValidity-time.Hour || left > CertValidity {
		t.Fatalf("ExpiresIn = %v, %v; want about %v", left, err, CertValidity)
	}
}

func TestSecretFile(t *testing.T) {
	d := Dir(t.TempDir() + "/tls")
	if s, err := d.ReadSecret(); s != "" || err != nil {
		t.Fatalf("ReadSecret of an empty dir = %q, %v; want \"\", nil", s, err)
	}
	if err := d.WriteSecret(""); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("WriteSecret(\"\") = %v, want ErrInvalidToken", err)
	}
	if err := d.WriteSecret("s3cret"); err != nil {
		t.Fatal(err)
	}
	if s, err := d.ReadSecret(); s != "s3cret" || err != nil {
		t.Fatalf("ReadSecret = %q, %v; want s3cret", s, err)
	}
	if loose, err := d.Permissions(); err != nil || len(loose) > 0 {
		t.Fatalf("Permissions() = %v, %v; want none", loose, err)
	}
}
