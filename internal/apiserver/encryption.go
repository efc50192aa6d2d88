package apiserver

import (
	"fmt"
	"path/filepath"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/peapod/peapod/internal/storage/encryption"
)

// EncryptionConfigFile is the EncryptionConfiguration the server writes
// into <data-dir>/pki (with a fresh key) and uses when it is given none.
const EncryptionConfigFile = "encryption-config.yaml"

// loadEncryption reads --encryption-provider-config, or the server's own
// configuration in pkiDir, written the first time.
func loadEncryption(path, pkiDir string) (*encryption.Config, error) {
	if path != "" {
		c, err := encryption.LoadConfig(path)
		if err != nil {
			return nil, fmt.Errorf("--encryption-provider-config: %w", err)
		}
		return c, nil
	}
	return encryption.LoadOrCreateDefault(filepath.Join(pkiDir, EncryptionConfigFile))
}

// encryptAtRest wraps the api's store so the resources cfg names are
// sealed before they reach etcd and opened on the way back. It refuses a
// name peapod does not serve: a typo ("secret") must not leave Secrets in
// plain text. Wildcards ("*.", "*.apps", "*.*") cover what they match.
// Resources that share storage (core and events.k8s.io Events) share the
// transformer of the first registered one the configuration covers.
func (a *api) encryptAtRest(cfg *encryption.Config) error {
	for _, e := range cfg.Entries() {
		for j, name := range e.Resources {
			gr := schema.ParseGroupResource(name)
			if gr.Resource == "*" || a.serves(gr) {
				continue
			}
			return fmt.Errorf("encryption config: %s[%d]: Invalid value: %q: not a resource peapod serves", e.Field, j, name)
		}
	}
	byPrefix := map[string]encryption.Transformer{}
	for _, r := range a.resources {
		p := r.prefix("")
		if _, done := byPrefix[p]; done {
			continue
		}
		if t := cfg.For(r.GVR.GroupResource()); t != nil {
			byPrefix[p] = t
		}
	}
	a.store = encryption.NewStore(a.store, byPrefix)
	return nil
}

func (a *api) serves(gr schema.GroupResource) bool {
	for _, r := range a.resources {
		if r.GVR.GroupResource() == gr {
			return true
		}
	}
	return false
}
