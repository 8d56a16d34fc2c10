package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// tokenJSON is the answer of GET /cluster/token and, with previous_until,
// of POST /cluster/secret/rotate.
type tokenJSON struct {
	Token         string     `json:"token"`
	PreviousUntil *time.Time `json:"previous_until,omitempty"`
}

func newTokenCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print the join token, ck1.<ca-sha256>.<secret> (needs the token)",
		Long: `Print the token a new node joins with. It pins the cluster CA's SHA-256, so
the joiner authenticates the cluster before it sends the secret; a node
without the CA prints the plain secret. Any accepted token (a plain secret,
or one replaced by a rotation that is still in its window) may ask.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newTokenClient(g)
			if err != nil {
				return err
			}
			var out tokenJSON
			if _, _, err := c.do(cmd.Context(), http.MethodGet, "/cluster/token", bearer(c.token), &out); err != nil {
				return failed(err)
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			return nil
		},
	}
	cmd.AddCommand(newTokenRotateCommand(g))
	return cmd
}

func newTokenRotateCommand(g *globals) *cobra.Command {
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the cluster secret; the old one stays accepted for --window (needs the token)",
		Long: `Replace the cluster secret by a new random one, on every node at once and
without a restart. The old secret stays accepted until --window has passed;
give the new token (printed once, never stored) to joiners and to every
node's ClusterToken before then.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newTokenClient(g)
			if err != nil {
				return err
			}
			if window < 0 {
				return usageError("invalid --window %v: give a positive duration such as 24h", window)
			}
			body, _ := json.Marshal(map[string]string{"window": window.String()})
			var out tokenJSON
			_, _, err = c.doBody(cmd.Context(), http.MethodPost, "/cluster/secret/rotate", bearer(c.token), bytes.NewReader(body), &out)
			if err != nil {
				return failed(err)
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\nthe previous secret is accepted until %s\n", out.Token, out.PreviousUntil.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().DurationVar(&window, "window", 24*time.Hour, "how long the replaced secret stays accepted (at most 720h)")
	return cmd
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// newTokenClient is newClient for a command that needs the token.
func newTokenClient(g *globals) (*client, error) {
	c, err := newClient(g)
	if err != nil {
		return nil, err
	}
	return c, c.needToken()
}
