package clusterkit

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

func TestEtcdCredentialOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		etcd  EtcdConfig
		field string // "" = valid
	}{
		{"files", EtcdConfig{Endpoints: []string{"https://e:2379"}, CertFile: "c", KeyFile: "k", CAFile: "ca"}, ""},
		{"CA only", EtcdConfig{Endpoints: []string{"e:2379"}, CAFile: "ca"}, ""},
		{"password", EtcdConfig{Endpoints: []string{"http://e:2379"}, Username: "u", Password: "p"}, ""},
		{"TLS and files", EtcdConfig{Endpoints: []string{"https://e:2379"}, TLS: &tls.Config{}, CAFile: "ca"}, "Etcd.TLS"},
		{"cert without key", EtcdConfig{Endpoints: []string{"https://e:2379"}, CertFile: "c"}, "Etcd.CertFile/KeyFile"},
		{"user without password", EtcdConfig{Endpoints: []string{"http://e:2379"}, Username: "u"}, "Etcd.Username/Password"},
		{"password without user", EtcdConfig{Endpoints: []string{"http://e:2379"}, Password: "p"}, "Etcd.Username/Password"},
		{"TLS on http", EtcdConfig{Endpoints: []string{"http://e:2379"}, TLS: &tls.Config{}}, "Etcd.Endpoints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{NodeID: "n", HTTPAddr: "127.0.0.1:0", Etcd: tc.etcd})
			if tc.field == "" {
				if err != nil {
					t.Fatalf("New: %v, want no error", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("New error = %v, want ErrInvalidOptions naming %s", err, tc.field)
			}
		})
	}
}

func TestEtcdFilesUnreadable(t *testing.T) {
	c := EtcdConfig{CertFile: "/nonexistent/c.crt", KeyFile: "/nonexistent/c.key"}
	if _, err := c.tlsConfig(); !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "/nonexistent/c.crt") {
		t.Fatalf("tlsConfig error = %v, want ErrTLS naming the file", err)
	}
	c = EtcdConfig{CAFile: "/nonexistent/ca.crt"}
	if _, err := c.tlsConfig(); !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "/nonexistent/ca.crt") {
		t.Fatalf("tlsConfig error = %v, want ErrTLS naming the file", err)
	}
}
