package encryption

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// DefaultKeyName names the key LoadOrCreateDefault generates.
const DefaultKeyName = "key1"

// LoadOrCreateDefault reads the EncryptionConfiguration at path, first
// writing one (mode 0600, its directory 0700) that encrypts Secrets with
// secretbox under a fresh random 32-byte key, with identity after it to
// read Secrets stored before encryption was turned on. It is the server's
// configuration when none is given; the file is an ordinary
// EncryptionConfiguration, edited in place to rotate keys.
//
// secretbox rather than aesgcm: a key that nobody may ever rotate should
// not have a write budget, and AES-GCM with random 96-bit nonces does
// (kube-apiserver's documentation says to rotate aesgcm keys every 200k
// writes); secretbox's 192-bit nonces do not run out.
func LoadOrCreateDefault(path string) (*Config, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := writeDefault(path); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("encryption config: %w", err)
	}
	return LoadConfig(path)
}

func writeDefault(path string) error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("generate encryption key: %w", err)
	}
	ec := EncryptionConfiguration{
		APIVersion: APIVersion,
		Kind:       Kind,
		Resources: []ResourceConfiguration{{
			Resources: []string{"secrets"},
			Providers: []ProviderConfiguration{
				{Secretbox: &KeysConfiguration{Keys: []Key{{Name: DefaultKeyName, Secret: base64.StdEncoding.EncodeToString(secret)}}}},
				{Identity: &struct{}{}},
			},
		}},
	}
	data, err := yaml.Marshal(ec)
	if err != nil {
		return fmt.Errorf("encode encryption config: %w", err)
	}
	header := []byte("# Encryption at rest for peapod's API (kube-apiserver's EncryptionConfiguration).\n" +
		"# Generated once; to rotate, put a new key first, restart, rewrite every Secret, drop the old key\n" +
		"# (docs/architecture.md, \"The state store and its keys\"). Losing this file loses every Secret.\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write encryption config: %w", err)
	}
	// Written to a temporary name and renamed, so a crash never leaves a
	// half-written key that the next start would refuse (or, worse,
	// replace while Secrets sealed by the first one exist).
	tmp := path + ".tmp"
	if err := writeSynced(tmp, append(header, data...)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write encryption config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write encryption config: %w", err)
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}

// writeSynced writes data to a new 0600 file and flushes it to disk.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
