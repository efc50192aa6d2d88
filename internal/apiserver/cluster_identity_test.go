package apiserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/peapod/peapod/internal/storage"
	"github.com/peapod/peapod/internal/storage/encryption"
)

// TestClusterIdentityRefusesAnotherPKI: the first server records its CA
// and service-account key; a second server with the same ones starts, one
// with another CA or key is refused with what to copy.
func TestClusterIdentityRefusesAnotherPKI(t *testing.T) {
	ctx := context.Background()
	store := storage.NewMemory()
	defer store.Close()
	first, err := LoadOrCreatePKI(t.TempDir(), []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadOrCreatePKI(t.TempDir(), []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	saKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherSAKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id := func(caPEM []byte, key *ecdsa.PrivateKey) clusterIdentity {
		t.Helper()
		got, err := identityOf(caPEM, key)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if err := checkClusterIdentity(ctx, store, id(first.CAPEM, saKey), "/first/pki"); err != nil {
		t.Fatalf("first server: %v", err)
	}
	if err := checkClusterIdentity(ctx, store, id(first.CAPEM, saKey), "/second/pki"); err != nil {
		t.Fatalf("a second server with the same PKI: %v", err)
	}
	err = checkClusterIdentity(ctx, store, id(other.CAPEM, saKey), "/second/pki")
	for _, want := range []string{"/second/pki/ca.crt", "is not the CA of the cluster in etcd", "copy [ca.crt ca.key sa.key encryption-config.yaml]", "into /second/pki"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("another CA: %v; want it to say %q", err, want)
		}
	}
	err = checkClusterIdentity(ctx, store, id(first.CAPEM, otherSAKey), "/second/pki")
	if err == nil || !strings.Contains(err.Error(), "/second/pki/sa.key") || !strings.Contains(err.Error(), "service-account tokens of one server would not verify") {
		t.Errorf("another service-account key: %v", err)
	}
}

func encryptionConfig(t *testing.T, keys ...byte) *encryption.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - secretbox:\n      keys:\n")
	for _, k := range keys {
		b.WriteString("      - {name: key" + fmt.Sprint(k) + ", secret: " + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{k}, 32)) + "}\n")
	}
	b.WriteString("  - identity: {}\n")
	c, err := encryption.ParseConfig([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEncryptionCheck: a server whose keys cannot open what the first one
// sealed is refused; a key rotation in kube-apiserver's order passes at
// every step, the check moving to the new key.
func TestEncryptionCheck(t *testing.T) {
	ctx := context.Background()
	store := storage.NewMemory()
	defer store.Close()
	secrets := schema.GroupResource{Resource: "secrets"}
	check := func(c *encryption.Config) error {
		return checkEncryption(ctx, store, c.For(secrets), "/etc/enc.yaml", "/second/pki")
	}
	if err := check(encryptionConfig(t, 1)); err != nil {
		t.Fatalf("first server: %v", err)
	}
	kv, err := store.Get(ctx, encryptionCheckKey)
	if err != nil || !bytes.HasPrefix(kv.Value, []byte("k8s:enc:secretbox:v1:key1:")) || bytes.Contains(kv.Value, []byte(encryptionCheckText)) {
		t.Fatalf("the check is not sealed with key1: %q %v", kv.Value, err)
	}
	err = check(encryptionConfig(t, 2))
	for _, want := range []string{"/etc/enc.yaml cannot open what the cluster's servers sealed", "k8s:enc:secretbox:v1:key1:", "encryption-config.yaml copied into /second/pki"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("another key: %v; want it to say %q", err, want)
		}
	}
	// Rotation: key2 added second everywhere, then made first, then key1 dropped.
	for _, step := range [][]byte{{1, 2}, {2, 1}, {2}} {
		if err := check(encryptionConfig(t, step...)); err != nil {
			t.Fatalf("rotation step %v: %v", step, err)
		}
	}
	if kv, _ := store.Get(ctx, encryptionCheckKey); !bytes.HasPrefix(kv.Value, []byte("k8s:enc:secretbox:v1:key2:")) {
		t.Fatalf("after rotation the check is %q, want sealed with key2", kv.Value[:30])
	}
	if err := check(encryptionConfig(t, 1)); err == nil {
		t.Fatal("a server left with the removed key passed")
	}
	// Secrets not encrypted at all: nothing to check.
	if err := checkEncryption(ctx, store, nil, "x", "y"); err != nil {
		t.Fatal(err)
	}
}

func TestCopySharedPKI(t *testing.T) {
	from, to := t.TempDir(), filepath.Join(t.TempDir(), "pki")
	for _, name := range SharedPKIFiles {
		if err := os.WriteFile(filepath.Join(from, name), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := CopySharedPKI(from, to); err != nil {
		t.Fatal(err)
	}
	for _, name := range SharedPKIFiles {
		st, err := os.Stat(filepath.Join(to, name))
		if err != nil {
			t.Fatal(err)
		}
		if want := os.FileMode(0o600); name == "ca.crt" {
			if st.Mode().Perm() != 0o644 {
				t.Errorf("%s mode %v", name, st.Mode())
			}
		} else if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode(), want)
		}
	}
	if st, _ := os.Stat(to); st.Mode().Perm() != 0o700 {
		t.Errorf("pki dir mode %v", st.Mode())
	}
	if err := CopySharedPKI(from, to); err != nil {
		t.Fatalf("copying the same files again: %v", err)
	}
	os.WriteFile(filepath.Join(to, "ca.key"), []byte("another"), 0o600)
	if err := CopySharedPKI(from, to); err == nil || !strings.Contains(err.Error(), "ca.key exists and differs") {
		t.Fatalf("overwrote a different key: %v", err)
	}
}
