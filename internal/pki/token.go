package pki

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// tokenPrefix marks a token that carries the CA's fingerprint.
const tokenPrefix = "ck1."

// Token is a parsed join token. Pin is the hex SHA-256 of the cluster CA's
// DER certificate, empty for a plain secret. The zero Token is invalid.
type Token struct {
	Pin    string
	Secret string
}

// ParseToken reads "ck1.<64 lowercase hex>.<secret>" or a plain secret. A
// string starting with "ck1." must be well formed; anything else is taken
// as a plain secret. The error names what is wrong and wraps ErrInvalidToken.
func ParseToken(s string) (Token, error) {
	if s == "" {
		return Token{}, fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	if !strings.HasPrefix(s, tokenPrefix) {
		return Token{Secret: s}, nil
	}
	pin, secret, ok := strings.Cut(strings.TrimPrefix(s, tokenPrefix), ".")
	if !ok || secret == "" {
		return Token{}, fmt.Errorf("%w: want ck1.<ca-sha256>.<secret>, got %d characters without a secret", ErrInvalidToken, len(s))
	}
	if b, err := hex.DecodeString(pin); err != nil || len(b) != 32 || strings.ToLower(pin) != pin {
		return Token{}, fmt.Errorf("%w: CA pin %q is not 64 lowercase hex digits", ErrInvalidToken, pin)
	}
	return Token{Pin: pin, Secret: secret}, nil
}

// String formats the token; a token without a pin is its secret alone.
func (t Token) String() string {
	if t.Pin == "" {
		return t.Secret
	}
	return tokenPrefix + t.Pin + "." + t.Secret
}

// NewSecret returns 32 random bytes as unpadded base64url (43 characters,
// no dots, safe in a token and a shell).
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pki: new secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
