package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"regexp"
	"time"
)

// Validity of what this package issues. A CA outlives its certificates so
// that renewing a member never needs a new CA.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so a peer whose clock is a little
	// behind accepts a certificate issued a moment ago.
	clockSkew = 5 * time.Minute
)

// CA is a cluster's certificate authority: its certificate and private key.
// Immutable after creation; safe for concurrent use.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA creates a CA named after the cluster, valid for CAValidity from now.
func NewCA(cluster string, now time.Time) (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "clusterkit CA " + cluster, Organization: []string{"clusterkit"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM returns the CA certificate in PEM form.
func (ca *CA) CertPEM() []byte { return encodeCert(ca.Cert.Raw) }

// Fingerprint is the hex SHA-256 of the CA certificate, the pin in a token.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert.Raw) }

// Fingerprint returns the lowercase hex SHA-256 of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Pool returns a certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// SignCSR checks a PEM certificate request's signature and issues a
// certificate for it, valid for validity from now, usable as server and
// client, with the request's common name and subject alternative names
// (DNS names and IP addresses). It returns the certificate in PEM form.
func (ca *CA) SignCSR(csrPEM []byte, validity time.Duration, now time.Time) ([]byte, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	der, err := ca.issue(csr.PublicKey, csr.Subject.CommonName, csr.DNSNames, csr.IPAddresses, serverAndClient, validity, now)
	if err != nil {
		return nil, err
	}
	return encodeCert(der), nil
}

// SignClientCSR is SignCSR for a process that serves nothing (a router, a
// command-line tool): the certificate has the request's common name, no
// subject alternative names, and client usage only, so it cannot serve
// TLS nor sign. The common name must be 1 to 64 characters of
// [A-Za-z0-9._-].
func (ca *CA) SignClientCSR(csrPEM []byte, validity time.Duration, now time.Time) ([]byte, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	if cn := csr.Subject.CommonName; len(cn) > 64 || !clientName.MatchString(cn) {
		return nil, fmt.Errorf("%w: client name %q: want 1 to 64 characters of [A-Za-z0-9._-]", ErrInvalidCSR, cn)
	}
	der, err := ca.issue(csr.PublicKey, csr.Subject.CommonName, nil, nil, clientOnly, validity, now)
	if err != nil {
		return nil, err
	}
	return encodeCert(der), nil
}

// clientName is what a client certificate's common name may hold.
var clientName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Extended key usages of what a CA issues: members serve and dial,
// clients only dial.
var (
	serverAndClient = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	clientOnly      = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
)

// ParseCSR reads a PEM certificate request and checks its signature and
// that it names a common name. Errors wrap ErrInvalidCSR.
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: no PEM CERTIFICATE REQUEST block", ErrInvalidCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrInvalidCSR, err)
	}
	if csr.Subject.CommonName == "" {
		return nil, fmt.Errorf("%w: empty common name", ErrInvalidCSR)
	}
	return csr, nil
}

// Issue creates a key and a certificate for name and hosts (DNS names or IP
// addresses), for a node that holds the CA itself. It returns both in PEM.
func (ca *CA) Issue(name string, hosts []string, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	dns, ips := splitHosts(hosts)
	der, err := ca.issue(key.Public(), name, dns, ips, serverAndClient, validity, now)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = EncodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

func (ca *CA) issue(pub crypto.PublicKey, name string, dns []string, ips []net.IP, usages []x509.ExtKeyUsage, validity time.Duration, now time.Time) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"clusterkit"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  usages,
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate for %q: %w", name, err)
	}
	return der, nil
}

// NewKey creates an ECDSA P-256 private key.
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: new key: %w", err)
	}
	return k, nil
}

// NewCSR creates a PEM certificate request for name and hosts, signed by key.
func NewCSR(key crypto.Signer, name string, hosts []string) ([]byte, error) {
	dns, ips := splitHosts(hosts)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: name, Organization: []string{"clusterkit"}},
		DNSNames:    dns,
		IPAddresses: ips,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("pki: certificate request for %q: %w", name, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// EncodeKey returns key in PEM (PKCS #8).
func EncodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// splitHosts sorts hosts into DNS names and IP addresses; "localhost" and
// 127.0.0.1 are always included so local tools can reach the node.
func splitHosts(hosts []string) (dns []string, ips []net.IP) {
	seen := map[string]bool{}
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, hosts...) {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return s, nil
}
