package apiserver

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/peapod/peapod/internal/storage"
	"github.com/peapod/peapod/internal/storage/encryption"
)

// Several servers on one etcd are one cluster only if they share its PKI:
// the cluster CA (every certificate a client or node holds was signed by
// it), the service-account key (a token one server issued must verify on
// the other) and the encryption keys (a Secret one server sealed must open
// on the other). A server with other ones would answer, but split the
// cluster silently: nodes rejected by one server, tokens by the other,
// Secrets unreadable. So the first server records what it has in etcd and
// every later start compares, refusing with the way out before it serves.
//
// Two keys outside /registry (the API never serves them):
const (
	// clusterIdentityKey holds clusterIdentity as JSON.
	clusterIdentityKey = "/peapod/cluster-identity"
	// encryptionCheckKey holds a known text sealed with the keys that
	// encrypt Secrets: a server that cannot open it cannot read the
	// Secrets the others write. Each server that opens it with an older
	// key seals it again with its current one, so a key rotation done in
	// kube-apiserver's order (new key added everywhere, then made first,
	// then the old one removed) never trips it.
	encryptionCheckKey  = "/peapod/encryption-check"
	encryptionCheckText = "peapod encryption check"
)

// SharedPKIFiles are the files of <data-dir>/pki every server of one
// cluster must have the same copy of, as kubeadm's manual certificate
// distribution lists them: copied from the first server before another
// starts. Everything else in pki/ is per server (its serving certificate,
// its etcd client certificate) or made from these (admin and kubelet
// client certificates, signed by the shared CA).
var SharedPKIFiles = []string{"ca.crt", "ca.key", ServiceAccountKeyFile, EncryptionConfigFile}

// clusterIdentity is what the servers of one cluster must share, as
// hashes.
type clusterIdentity struct {
	// CA is CAHash of the cluster CA: the hash join tokens carry.
	CA string `json:"clusterCA"`
	// ServiceAccountKey is the hex SHA-256 of the service-account public
	// key (PKIX DER).
	ServiceAccountKey string `json:"serviceAccountKey"`
}

// identityOf hashes a server's CA and service-account key. Pure.
func identityOf(caPEM []byte, saKey crypto.Signer) (clusterIdentity, error) {
	ca, err := CAHash(caPEM)
	if err != nil {
		return clusterIdentity{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return clusterIdentity{}, fmt.Errorf("service-account public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return clusterIdentity{CA: ca, ServiceAccountKey: hex.EncodeToString(sum[:])}, nil
}

// sharePKIHint says how to give a server the cluster's PKI.
func sharePKIHint(pkiDir string) string {
	return fmt.Sprintf("every server of a cluster shares the first server's PKI: stop this server, copy %v from the first server's <data-dir>/pki into %s "+
		"(replacing this server's), and start it again (docs/architecture.md, \"Two servers on one etcd\")", SharedPKIFiles, pkiDir)
}

// mismatch compares this server's identity (mine) with the cluster's
// (stored) and explains the first difference. Pure.
func (stored clusterIdentity) mismatch(mine clusterIdentity, pkiDir string) error {
	switch {
	case stored.CA != mine.CA:
		return fmt.Errorf("this server's cluster CA (%s, sha256 %s) is not the CA of the cluster in etcd (sha256 %s): %s",
			filepath.Join(pkiDir, "ca.crt"), short(mine.CA), short(stored.CA), sharePKIHint(pkiDir))
	case stored.ServiceAccountKey != mine.ServiceAccountKey:
		return fmt.Errorf("this server's service-account key (%s, public key sha256 %s) is not the cluster's (sha256 %s): "+
			"service-account tokens of one server would not verify on the other; %s",
			filepath.Join(pkiDir, ServiceAccountKeyFile), short(mine.ServiceAccountKey), short(stored.ServiceAccountKey), sharePKIHint(pkiDir))
	}
	return nil
}

func short(hash string) string { return hash[:min(len(hash), 16)] }

// checkClusterIdentity records mine as the cluster's identity if etcd has
// none yet (the first server; of two first starts at once, one record
// wins and the other server compares against it), else refuses a server
// whose PKI is not the cluster's.
func checkClusterIdentity(ctx context.Context, store storage.Store, mine clusterIdentity, pkiDir string) error {
	data, err := json.Marshal(mine)
	if err != nil {
		return err
	}
	for {
		kv, err := store.Get(ctx, clusterIdentityKey)
		if errors.Is(err, storage.ErrNotFound) {
			if _, err := store.Create(ctx, clusterIdentityKey, data); errors.Is(err, storage.ErrExists) {
				continue
			} else if err != nil {
				return fmt.Errorf("record the cluster's identity in etcd: %w", err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the cluster's identity from etcd: %w", err)
		}
		var stored clusterIdentity
		if err := json.Unmarshal(kv.Value, &stored); err != nil {
			return fmt.Errorf("the cluster's identity in etcd (%s) does not parse: %w", clusterIdentityKey, err)
		}
		return stored.mismatch(mine, pkiDir)
	}
}

// checkEncryption proves this server opens what the others seal (see
// encryptionCheckKey). t is the Transformer of Secrets; nil (Secrets
// stored in plain text) checks nothing. source names the configuration
// for the error; pkiDir is this server's.
func checkEncryption(ctx context.Context, store storage.Store, t encryption.Transformer, source, pkiDir string) error {
	if t == nil {
		return nil
	}
	for {
		kv, err := store.Get(ctx, encryptionCheckKey)
		if errors.Is(err, storage.ErrNotFound) {
			sealed, err := t.TransformToStorage([]byte(encryptionCheckText), encryptionCheckKey)
			if err != nil {
				return err
			}
			if _, err := store.Create(ctx, encryptionCheckKey, sealed); errors.Is(err, storage.ErrExists) {
				continue
			} else if err != nil {
				return fmt.Errorf("record the encryption check in etcd: %w", err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the encryption check from etcd: %w", err)
		}
		plain, stale, err := t.TransformFromStorage(kv.Value, encryptionCheckKey)
		if err == nil && !bytes.Equal(plain, []byte(encryptionCheckText)) {
			err = errors.New("it opened to something else")
		}
		if err != nil {
			return fmt.Errorf("the encryption configuration %s cannot open what the cluster's servers sealed (%v): "+
				"this server would not read their Secrets, nor they its own. Give every server the same EncryptionConfiguration "+
				"(the same --encryption-provider-config file, or the first server's <data-dir>/pki/%s copied into %s); "+
				"when rotating keys, add the new key to every server before any server writes with it",
				source, err, EncryptionConfigFile, pkiDir)
		}
		if !stale {
			return nil
		}
		sealed, err := t.TransformToStorage(plain, encryptionCheckKey)
		if err != nil {
			return err
		}
		if _, err := store.Update(ctx, encryptionCheckKey, sealed, kv.Revision); errors.Is(err, storage.ErrConflict) {
			continue
		} else if err != nil {
			return fmt.Errorf("reseal the encryption check: %w", err)
		}
		return nil
	}
}

// CopySharedPKI copies SharedPKIFiles from one server's pki directory to
// another's (created 0700; keys keep 0600), for tools that set up a second
// server on the same machine (`peapod cluster up --servers 2`). It
// refuses to overwrite files that differ: a server that has started has
// its own, and the way out is the operator's to choose.
func CopySharedPKI(fromDir, toDir string) error {
	if err := os.MkdirAll(toDir, 0o700); err != nil {
		return fmt.Errorf("copy pki: %w", err)
	}
	for _, name := range SharedPKIFiles {
		src, dst := filepath.Join(fromDir, name), filepath.Join(toDir, name)
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("copy pki: %w", err)
		}
		if have, err := os.ReadFile(dst); err == nil {
			if !bytes.Equal(have, data) {
				return fmt.Errorf("copy pki: %s exists and differs from %s", dst, src)
			}
			continue
		}
		mode := os.FileMode(0o600)
		if filepath.Ext(name) == ".crt" {
			mode = 0o644
		}
		if err := copyFile(src, dst, mode); err != nil {
			return fmt.Errorf("copy pki: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
