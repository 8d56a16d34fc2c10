package clusterkit

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// handleRenewCertificate serves POST /cluster/certificate: a member that
// keeps the cluster CA key signs a certificate request of a node that
// authenticates with its current, unexpired certificate of the same CA
// over TLS; the request's common name must be the certificate's (a node
// renews only itself). No token: the certificate is the credential.
// Answers 200 {"certificate": PEM}; 401 without a valid client
// certificate; 403 for another name or a client-only certificate (those
// are issued again with the token); 400 for a malformed request; 503 on
// a node that cannot sign (the renewer asks another).
func (ck *ClusterKit) handleRenewCertificate(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		writeError(w, http.StatusUnauthorized, "renewal needs https:// with this node's current cluster certificate")
		return
	}
	ca, err := tlsDir(&ck.opts).LoadCA()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "this node does not keep the cluster CA key and cannot sign")
		return
	}
	leaf := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		writeError(w, http.StatusUnauthorized, "client certificate: "+err.Error())
		return
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		// A client-only certificate (RequestClientCertificate) must not
		// turn into a member's server certificate here.
		writeError(w, http.StatusForbidden, "a client certificate is not renewed here: request a new one with the cluster token (clusterkit cert issue)")
		return
	}
	var req renewRequest
	if status, err := decodeBody(w, r, &req, maxRenewBody, false, false); err != nil {
		writeError(w, status, "renewal request: "+err.Error())
		return
	}
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		writeError(w, http.StatusBadRequest, "renewal request: "+err.Error())
		return
	}
	if csr.Subject.CommonName != leaf.Subject.CommonName {
		writeError(w, http.StatusForbidden, "a node renews only its own certificate: the request names "+
			csr.Subject.CommonName+", the client certificate "+leaf.Subject.CommonName)
		return
	}
	certPEM, err := ca.SignCSR([]byte(req.CSR), pki.CertValidity, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ck.log.Info("certificate renewed for a node", zapNode(leaf.Subject.CommonName), zap.String("remote", r.RemoteAddr))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, renewResponse{Certificate: string(certPEM)})
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE")
	}
	return x509.ParseCertificate(block.Bytes)
}
