package pki

import (
	"fmt"
	"os"
	"strings"
)

// SecretFile is the name, inside a Dir, of the cluster secret a node
// generated or was given (0600, like every file of a Dir).
const SecretFile = "secret"

// WriteSecret stores the cluster secret, replacing any old one whole.
func (d Dir) WriteSecret(secret string) error {
	if secret == "" {
		return fmt.Errorf("%w: empty secret", ErrInvalidToken)
	}
	return d.write(SecretFile, []byte(secret+"\n"))
}

// ReadSecret returns the stored cluster secret; "" and no error when there
// is none.
func (d Dir) ReadSecret() (string, error) {
	b, err := os.ReadFile(d.Path(SecretFile))
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidFiles, err)
	}
	return strings.TrimSpace(string(b)), nil
}
