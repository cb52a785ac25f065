// Package secrets seals values stored in the database (remote passwords,
// client keys, proxy credentials) with AES-256-GCM under keys the operator
// holds outside the database. A Keyring encrypts with its first key and
// decrypts with any, so keys rotate by putting a new one first, resealing,
// and then dropping the old one.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// prefix marks a sealed value: "sealed:v1:<key id>:<base64 nonce+ciphertext>".
const prefix = "sealed:v1:"

// Keyring holds the keys; the zero or nil Keyring stores values as they
// are.
type Keyring struct {
	ids   []string
	aeads []cipher.AEAD
}

// New returns a Keyring of 32-byte keys, the first one sealing.
func New(keys ...[]byte) (*Keyring, error) {
	k := &Keyring{}
	for i, key := range keys {
		if len(key) != 32 {
			return nil, fmt.Errorf("secret key %d: %d bytes, want 32", i+1, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(key)
		k.ids = append(k.ids, hex.EncodeToString(sum[:4]))
		k.aeads = append(k.aeads, aead)
	}
	return k, nil
}

// Parse reads keys written one a line as base64 (standard or URL
// encoding), ignoring blank lines and lines starting with '#'.
func Parse(text string) (*Keyring, error) {
	var keys [][]byte
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			if key, err = base64.RawURLEncoding.DecodeString(line); err != nil {
				return nil, fmt.Errorf("secret key on line %d: not base64", i+1)
			}
		}
		keys = append(keys, key)
	}
	return New(keys...)
}

// NewKey returns a fresh key as a line for a key file.
func NewKey() (string, error) {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(key[:]), nil
}

// Active reports whether the Keyring seals.
func (k *Keyring) Active() bool { return k != nil && len(k.aeads) > 0 }

// IsSealed reports whether v is a sealed value.
func IsSealed(v string) bool { return strings.HasPrefix(v, prefix) }

// Seal returns v sealed with the first key; "" stays "" and, without keys,
// v is returned as it is.
func (k *Keyring) Seal(v string) (string, error) {
	if v == "" || !k.Active() || IsSealed(v) {
		return v, nil
	}
	aead := k.aeads[0]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := aead.Seal(nonce, nonce, []byte(v), []byte(k.ids[0]))
	return prefix + k.ids[0] + ":" + base64.StdEncoding.EncodeToString(out), nil
}

// Open returns the plain value of v: a value not sealed is returned as it
// is (stored before keys were configured); a sealed one needs the key it
// was sealed with.
func (k *Keyring) Open(v string) (string, error) {
	if !IsSealed(v) {
		return v, nil
	}
	id, data, ok := strings.Cut(strings.TrimPrefix(v, prefix), ":")
	if !ok {
		return "", fmt.Errorf("sealed value is malformed")
	}
	if k != nil {
		for i, kid := range k.ids {
			if kid != id {
				continue
			}
			raw, err := base64.StdEncoding.DecodeString(data)
			aead := k.aeads[i]
			if err != nil || len(raw) < aead.NonceSize() {
				return "", fmt.Errorf("sealed value is malformed")
			}
			plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(id))
			if err != nil {
				return "", fmt.Errorf("sealed value does not open with key %s: %v", id, err)
			}
			return string(plain), nil
		}
	}
	return "", fmt.Errorf("a stored secret was sealed with key %s, which is not configured", id)
}
