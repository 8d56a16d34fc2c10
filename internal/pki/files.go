package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File names inside a Dir.
const (
	CAFile    = "ca.crt"
	CAKeyFile = "ca.key"
	CertFile  = "node.crt"
	KeyFile   = "node.key"
	// ClientCertFile and ClientKeyFile are a client-only certificate and
	// its key (a router's or a command-line tool's, not a node's).
	ClientCertFile = "client.crt"
	ClientKeyFile  = "client.key"
)

// Dir is a directory holding a node's TLS material: the cluster CA
// certificate, the CA key (only on nodes that can sign), and the node's own
// certificate and key. Every file is 0600 and the directory 0700.
type Dir string

// Path returns the path of a file in d.
func (d Dir) Path(name string) string { return filepath.Join(string(d), name) }

// HasNode reports whether d holds a node certificate and key.
func (d Dir) HasNode() bool { return d.exists(CertFile) && d.exists(KeyFile) }

// HasCA reports whether d holds the CA's private key (this node can sign).
func (d Dir) HasCA() bool { return d.exists(CAFile) && d.exists(CAKeyFile) }

func (d Dir) exists(name string) bool {
	_, err := os.Stat(d.Path(name))
	return err == nil
}

// WriteCA stores the CA certificate and key.
func (d Dir) WriteCA(ca *CA) error {
	keyPEM, err := EncodeKey(ca.Key)
	if err != nil {
		return err
	}
	if err := d.write(CAKeyFile, keyPEM); err != nil {
		return err
	}
	return d.write(CAFile, ca.CertPEM())
}

// WriteNode stores the CA certificate (trust anchor) and the node's
// certificate and key, each written whole (temp file + rename).
func (d Dir) WriteNode(caPEM, certPEM, keyPEM []byte) error {
	return d.writePair(CertFile, KeyFile, caPEM, certPEM, keyPEM)
}

// WriteClient stores the CA certificate and a client's certificate and
// key (ClientCertFile, ClientKeyFile), each written whole.
func (d Dir) WriteClient(caPEM, certPEM, keyPEM []byte) error {
	return d.writePair(ClientCertFile, ClientKeyFile, caPEM, certPEM, keyPEM)
}

func (d Dir) writePair(certName, keyName string, caPEM, certPEM, keyPEM []byte) error {
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("%w: certificate and key: %v", ErrInvalidFiles, err)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{keyName, keyPEM}, {certName, certPEM}, {CAFile, caPEM}} {
		if err := d.write(f.name, f.b); err != nil {
			return err
		}
	}
	return nil
}

// LoadCA reads the CA certificate and key.
func (d Dir) LoadCA() (*CA, error) {
	pair, err := tls.LoadX509KeyPair(d.Path(CAFile), d.Path(CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("%w: CA in %s: %v", ErrInvalidFiles, d, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: CA key in %s cannot sign", ErrInvalidFiles, d)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("%w: CA certificate in %s: %v", ErrInvalidFiles, d, err)
	}
	return &CA{Cert: cert, Key: signer}, nil
}

// LoadNode reads the node's certificate (with its Leaf parsed) and the CA
// pool it trusts.
func (d Dir) LoadNode() (tls.Certificate, *x509.CertPool, error) {
	pair, err := tls.LoadX509KeyPair(d.Path(CertFile), d.Path(KeyFile))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("%w: node certificate in %s: %v", ErrInvalidFiles, d, err)
	}
	caPEM, err := os.ReadFile(d.Path(CAFile))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("%w: %v", ErrInvalidFiles, err)
	}
	pool, caDER, err := poolOf(caPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("%w: %s: %v", ErrInvalidFiles, d.Path(CAFile), err)
	}
	// Serve the CA with the leaf so a joiner can check the token's pin.
	pair.Certificate = append(pair.Certificate, caDER)
	return pair, pool, nil
}

// CAFingerprint returns the pin of the CA certificate stored in d.
func (d Dir) CAFingerprint() (string, error) {
	b, err := os.ReadFile(d.Path(CAFile))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidFiles, err)
	}
	_, der, err := poolOf(b)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrInvalidFiles, d.Path(CAFile), err)
	}
	return Fingerprint(der), nil
}

func poolOf(caPEM []byte) (*x509.CertPool, []byte, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, errors.New("no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, block.Bytes, nil
}

// write stores b as name, 0600, replacing any old file whole.
func (d Dir) write(name string, b []byte) error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(string(d), 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	tmp, err := os.CreateTemp(string(d), "."+name+".*")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: write %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pki: write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), d.Path(name)); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// Permissions returns the files in d whose mode grants anything to group or
// others, for a check at start-up or in a test.
func (d Dir) Permissions() ([]string, error) {
	var loose []string
	err := filepath.WalkDir(string(d), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			loose = append(loose, fmt.Sprintf("%s (%v)", p, info.Mode().Perm()))
		}
		return nil
	})
	return loose, err
}

// ReadPool reads a PEM file of one or more CA certificates into a pool.
// The error wraps ErrInvalidFiles.
func ReadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidFiles, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrInvalidFiles, path)
	}
	return pool, nil
}
