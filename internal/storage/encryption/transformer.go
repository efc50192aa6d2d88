package encryption

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/nacl/secretbox"
)

// Transformer turns a resource's serialized object into what is stored in
// etcd and back. Implementations are safe for concurrent use.
type Transformer interface {
	// TransformToStorage seals data; key is the etcd key it is stored
	// under, which AES-GCM authenticates so that a value copied to another
	// key does not decrypt.
	TransformToStorage(data []byte, key string) ([]byte, error)
	// TransformFromStorage opens a stored value. stale reports that the
	// value was not sealed by the key that writes now (an older key, or
	// plain text before encryption): rewriting it moves it to the
	// current key.
	TransformFromStorage(stored []byte, key string) (data []byte, stale bool, err error)
}

// encryptedPrefix starts every value an encrypting provider stored.
const encryptedPrefix = "k8s:enc:"

// ErrEncrypted is returned when a value sealed by an encrypting provider is
// read where no configured key could open it.
var ErrEncrypted = errors.New("the stored value is encrypted with a key this server does not have")

// sealer is one key of one provider.
type sealer interface {
	seal(data []byte, key string) ([]byte, error)
	open(sealed []byte, key string) ([]byte, error)
}

// prefixed is a sealer with the prefix its values carry
// ("k8s:enc:aesgcm:v1:<name>:"; empty for identity).
type prefixed struct {
	prefix []byte
	sealer sealer
}

// chain is a resource's provider list flattened to its keys, in order:
// the first seals, any whose prefix a stored value carries opens it.
type chain []prefixed

var _ Transformer = chain(nil)

func (c chain) TransformToStorage(data []byte, key string) ([]byte, error) {
	first := c[0]
	sealed, err := first.sealer.seal(data, key)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", key, err)
	}
	if len(first.prefix) == 0 {
		return sealed, nil
	}
	out := make([]byte, 0, len(first.prefix)+len(sealed))
	return append(append(out, first.prefix...), sealed...), nil
}

func (c chain) TransformFromStorage(stored []byte, key string) ([]byte, bool, error) {
	var errs []error
	for i, p := range c {
		if !bytes.HasPrefix(stored, p.prefix) {
			continue
		}
		data, err := p.sealer.open(stored[len(p.prefix):], key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return data, i != 0, nil
	}
	if len(errs) > 0 {
		return nil, false, fmt.Errorf("decrypt %s: %w", key, errors.Join(errs...))
	}
	if bytes.HasPrefix(stored, []byte(encryptedPrefix)) {
		return nil, false, fmt.Errorf("decrypt %s: %w (its value starts %q)", key, ErrEncrypted, keyPrefixOf(stored))
	}
	return nil, false, fmt.Errorf("decrypt %s: the stored value is not encrypted and the provider list has no identity to read it", key)
}

// keyPrefixOf returns "k8s:enc:<provider>:v1:<name>:" of a sealed value,
// or as much of it as there is, to name the key an error is about.
func keyPrefixOf(stored []byte) []byte {
	colons := 0
	for i, b := range stored {
		if b == ':' {
			if colons++; colons == 5 {
				return stored[:i+1]
			}
		}
		if i >= 256 {
			break
		}
	}
	return stored[:min(len(stored), len(encryptedPrefix))]
}

// identity stores plain text. It refuses to "open" a value an encrypting
// provider sealed: returning ciphertext as if it were the object would
// hide that a key is missing.
type identity struct{}

func (identity) seal(data []byte, _ string) ([]byte, error) { return data, nil }

func (identity) open(stored []byte, _ string) ([]byte, error) {
	if bytes.HasPrefix(stored, []byte(encryptedPrefix)) {
		return nil, fmt.Errorf("identity: %w (its value starts %q)", ErrEncrypted, keyPrefixOf(stored))
	}
	return stored, nil
}

// aesGCM is kube-apiserver's aesgcm: nonce (12 bytes) || AES-GCM sealed
// data, with the etcd key as additional authenticated data.
type aesGCM struct {
	name string
	aead cipher.AEAD
}

func newAESGCM(name string, secret []byte) (*aesGCM, error) {
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &aesGCM{name: name, aead: aead}, nil
}

func (g *aesGCM) seal(data []byte, key string) ([]byte, error) {
	n := g.aead.NonceSize()
	out := make([]byte, n, n+len(data)+g.aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, out); err != nil {
		return nil, fmt.Errorf("aesgcm key %s: nonce: %w", g.name, err)
	}
	return g.aead.Seal(out, out[:n], data, []byte(key)), nil
}

func (g *aesGCM) open(sealed []byte, key string) ([]byte, error) {
	n := g.aead.NonceSize()
	if len(sealed) < n+g.aead.Overhead() {
		return nil, fmt.Errorf("aesgcm key %s: the stored value is too short (%d bytes)", g.name, len(sealed))
	}
	data, err := g.aead.Open(nil, sealed[:n], sealed[n:], []byte(key))
	if err != nil {
		return nil, fmt.Errorf("aesgcm key %s: %w", g.name, err)
	}
	return data, nil
}

// secretBox is kube-apiserver's secretbox: nonce (24 bytes) ||
// XSalsa20-Poly1305 sealed data. secretbox has no additional data, so
// (as in kube-apiserver) the etcd key is not bound.
type secretBox struct {
	name string
	key  [32]byte
}

const secretboxNonceSize = 24

func (s *secretBox) seal(data []byte, _ string) ([]byte, error) {
	var nonce [secretboxNonceSize]byte
	if _, err := io.ReadFull(rand.Reader, nonce[:]); err != nil {
		return nil, fmt.Errorf("secretbox key %s: nonce: %w", s.name, err)
	}
	out := make([]byte, secretboxNonceSize, secretboxNonceSize+len(data)+secretbox.Overhead)
	copy(out, nonce[:])
	return secretbox.Seal(out, data, &nonce, &s.key), nil
}

func (s *secretBox) open(sealed []byte, _ string) ([]byte, error) {
	if len(sealed) < secretboxNonceSize+secretbox.Overhead {
		return nil, fmt.Errorf("secretbox key %s: the stored value is too short (%d bytes)", s.name, len(sealed))
	}
	var nonce [secretboxNonceSize]byte
	copy(nonce[:], sealed)
	data, ok := secretbox.Open(nil, sealed[secretboxNonceSize:], &nonce, &s.key)
	if !ok {
		return nil, fmt.Errorf("secretbox key %s: message authentication failed", s.name)
	}
	return data, nil
}
