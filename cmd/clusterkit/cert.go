package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// certJSON is cert issue's -o json.
type certJSON struct {
	Cluster   string    `json:"cluster"`
	Name      string    `json:"name"`
	Endpoints []string  `json:"endpoints"`
	Cert      string    `json:"cert"`
	Key       string    `json:"key"`
	CACert    string    `json:"cacert"`
	NotAfter  time.Time `json:"not_after"`
}

func newCertCommand(g *globals) *cobra.Command {
	cert := &cobra.Command{
		Use:   "cert",
		Short: "Client certificates of the cluster CA for tools and routers that are not nodes",
		Args:  exactArgs(),
	}
	var name, out string
	issue := &cobra.Command{
		Use:   "issue --name NAME --out DIR",
		Short: "Get a client-only certificate for --etcd mode or a clusterkit.Router (needs the ck1. token)",
		Long: `Get a client certificate of the cluster CA from the node at --node, with the
join token "ck1.<ca-sha256>.<secret>" (clusterkit token): the node's
certificate must hold the CA the token pins before the secret is sent. The
key is made here and never leaves DIR; the node signs a certificate for
client use only (it cannot serve TLS nor sign) and never sends the CA key.
Nothing is registered in the cluster. Writes DIR/client.crt,
DIR/client.key and DIR/ca.crt (0600) and prints the etcd endpoints and
the flags of read-only etcd mode. The certificate is valid for a year and
is not renewed: issue a new one before it expires. It gives what etcd
gives any certificate of the cluster CA (full access to the cluster's
etcd): keep the key as you keep the token. With --cluster, a node of
another cluster is refused.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := certRequest(cmd, g, name, out)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			c, err := clusterkit.RequestClientCertificate(ctx, req)
			if err != nil {
				return explainCertError(err)
			}
			res := certJSON{Cluster: c.Cluster, Name: name, Endpoints: c.Endpoints, Cert: c.CertFile, Key: c.KeyFile, CACert: c.CAFile, NotAfter: c.NotAfter}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s, %s and %s: client certificate %q of cluster %s, valid until %s\n",
				res.Cert, res.Key, res.CACert, name, res.Cluster, res.NotAfter.UTC().Format(time.DateOnly))
			fmt.Fprintf(w, "read the cluster from etcd with:\n  clusterkit --etcd %s --cluster %s --cert %s --key %s --cacert %s status\n",
				strings.Join(res.Endpoints, ","), res.Cluster, res.Cert, res.Key, res.CACert)
			return nil
		},
	}
	issue.Annotations = map[string]string{annCluster: "yes"}
	issue.Flags().StringVar(&name, "name", "", "the certificate's name: 1 to 64 characters of [A-Za-z0-9._-] (shows in the node's log)")
	issue.Flags().StringVar(&out, "out", "", "directory for client.crt, client.key and ca.crt (created 0700)")
	cert.AddCommand(issue)
	return cert
}

// certRequest checks cert issue's flags.
func certRequest(cmd *cobra.Command, g *globals, name, out string) (clusterkit.ClientCertRequest, error) {
	var req clusterkit.ClientCertRequest
	if err := checkCommon(g); err != nil {
		return req, err
	}
	switch {
	case name == "":
		return req, usageError("cert issue needs --name NAME, the certificate's name")
	case out == "":
		return req, usageError("cert issue needs --out DIR, the directory for the files")
	case g.node == "":
		return req, usageError("cert issue asks a node: pass --node host:port (a node's HTTPAddr) or set %s", envNode)
	case !strings.HasPrefix(g.token, "ck1."):
		return req, usageError("cert issue needs the join token ck1.<ca-sha256>.<secret> (clusterkit token) in --token or %s", envToken)
	}
	addr := g.node
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil || u.Scheme != "https" || strings.Trim(u.Path, "/") != "" {
			return req, usageError("invalid --node %q for cert issue: give host:port or https://host:port", g.node)
		}
		addr = u.Host
	}
	req = clusterkit.ClientCertRequest{NodeAddr: addr, Token: g.token, Name: name, Dir: out}
	if cmd.Flags().Changed("cluster") {
		req.ClusterName = g.etcd.cluster
	}
	return req, nil
}

// explainCertError says what to do about a refused certificate request.
func explainCertError(err error) error {
	switch {
	case errors.Is(err, clusterkit.ErrInvalidOptions):
		return usageError("%v", err)
	case errors.Is(err, clusterkit.ErrUnauthorized):
		return failed(fmt.Errorf("%v; pass the cluster's join token (clusterkit token) with --token or %s", err, envToken))
	case errors.Is(err, clusterkit.ErrTLS):
		return failed(fmt.Errorf("%v; is --token this cluster's join token, and --node one of its nodes?", err))
	}
	return failed(fmt.Errorf("%v; check that --node is the HTTPAddr of a running node of a secure cluster that keeps the CA key (an etcd member)", err))
}
