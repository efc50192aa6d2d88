package encryption

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

var secrets = schema.GroupResource{Resource: "secrets"}

func b64(n int, fill byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

// configYAML builds an EncryptionConfiguration for secrets from provider
// snippets such as `aesgcm: {keys: [{name: k1, secret: ...}]}`.
func configYAML(providers ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n")
	for _, p := range providers {
		fmt.Fprintf(&b, "  - %s\n", p)
	}
	return b.String()
}

func aesgcmP(name string, n int, fill byte) string {
	return fmt.Sprintf("aesgcm: {keys: [{name: %s, secret: %q}]}", name, b64(n, fill))
}

func secretboxP(name string, fill byte) string {
	return fmt.Sprintf("secretbox: {keys: [{name: %s, secret: %q}]}", name, b64(32, fill))
}

const identityP = "identity: {}"

func transformer(t *testing.T, providers ...string) Transformer {
	t.Helper()
	c, err := ParseConfig([]byte(configYAML(providers...)))
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	tr := c.For(secrets)
	if tr == nil {
		t.Fatal("no transformer for secrets")
	}
	return tr
}

const etcdKey = "/registry/secrets/default/s"

func TestRoundTrip(t *testing.T) {
	plain := []byte(`{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}`)
	for _, tc := range []struct {
		name, provider, prefix string
	}{
		{"aesgcm-128", aesgcmP("k1", 16, 1), "k8s:enc:aesgcm:v1:k1:"},
		{"aesgcm-192", aesgcmP("k1", 24, 1), "k8s:enc:aesgcm:v1:k1:"},
		{"aesgcm-256", aesgcmP("k1", 32, 1), "k8s:enc:aesgcm:v1:k1:"},
		{"secretbox", secretboxP("box", 2), "k8s:enc:secretbox:v1:box:"},
		{"identity", identityP, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := transformer(t, tc.provider)
			stored, err := tr.TransformToStorage(plain, etcdKey)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(stored, []byte(tc.prefix)) {
				t.Fatalf("stored value %q lacks prefix %q", stored[:min(len(stored), 40)], tc.prefix)
			}
			if tc.prefix != "" && bytes.Contains(stored, []byte("aHVudGVyMg")) {
				t.Fatalf("the secret is visible in the stored value: %q", stored)
			}
			got, stale, err := tr.TransformFromStorage(stored, etcdKey)
			if err != nil || stale || !bytes.Equal(got, plain) {
				t.Fatalf("round trip: %q stale=%v err=%v", got, stale, err)
			}
			if tc.prefix != "" {
				again, _ := tr.TransformToStorage(plain, etcdKey)
				if bytes.Equal(again, stored) {
					t.Fatal("two encryptions of the same value are equal: the nonce is not fresh")
				}
			}
		})
	}
}

func TestWrongKey(t *testing.T) {
	plain := []byte("the object")
	stored, err := transformer(t, aesgcmP("k1", 32, 1)).TransformToStorage(plain, etcdKey)
	if err != nil {
		t.Fatal(err)
	}
	// Same name, other secret: the key is tried and fails authentication.
	if _, _, err := transformer(t, aesgcmP("k1", 32, 9)).TransformFromStorage(stored, etcdKey); err == nil || !strings.Contains(err.Error(), "message authentication failed") {
		t.Fatalf("wrong secret: %v", err)
	}
	// Another name: no key applies, even with identity listed.
	for _, providers := range [][]string{{aesgcmP("k2", 32, 1)}, {aesgcmP("k2", 32, 1), identityP}} {
		_, _, err := transformer(t, providers...).TransformFromStorage(stored, etcdKey)
		if !errors.Is(err, ErrEncrypted) || !strings.Contains(err.Error(), "k8s:enc:aesgcm:v1:k1:") {
			t.Fatalf("unknown key name with %v: %v", providers, err)
		}
	}
	sbox, _ := transformer(t, secretboxP("k1", 1)).TransformToStorage(plain, etcdKey)
	if _, _, err := transformer(t, secretboxP("k1", 7)).TransformFromStorage(sbox, etcdKey); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("secretbox wrong secret: %v", err)
	}
}

func TestTamperedData(t *testing.T) {
	for _, provider := range []string{aesgcmP("k1", 32, 1), secretboxP("k1", 1)} {
		tr := transformer(t, provider)
		stored, err := tr.TransformToStorage([]byte("the object"), etcdKey)
		if err != nil {
			t.Fatal(err)
		}
		for i := len("k8s:enc:aesgcm:v1:k1:"); i < len(stored); i++ {
			bad := bytes.Clone(stored)
			bad[i] ^= 0x01
			if got, _, err := tr.TransformFromStorage(bad, etcdKey); err == nil {
				t.Fatalf("%s: flipping byte %d went unnoticed: %q", provider, i, got)
			}
		}
		if _, _, err := tr.TransformFromStorage(stored[:len(stored)-1], etcdKey); err == nil {
			t.Fatalf("%s: a truncated value decrypted", provider)
		}
		if _, _, err := tr.TransformFromStorage([]byte("k8s:enc:aesgcm:v1:k1:"), etcdKey); err == nil {
			t.Fatalf("%s: an empty ciphertext decrypted", provider)
		}
	}
	// AES-GCM binds the value to its etcd key: moved to another key, it
	// does not open (kube-apiserver's authenticated data).
	tr := transformer(t, aesgcmP("k1", 32, 1))
	stored, _ := tr.TransformToStorage([]byte("the object"), etcdKey)
	if _, _, err := tr.TransformFromStorage(stored, "/registry/secrets/default/other"); err == nil {
		t.Fatal("a value copied to another etcd key decrypted")
	}
}

func TestIdentityFallback(t *testing.T) {
	plain := []byte(`{"kind":"Secret"}`)
	// Data stored before encryption: read through identity, marked stale.
	got, stale, err := transformer(t, aesgcmP("k1", 32, 1), identityP).TransformFromStorage(plain, etcdKey)
	if err != nil || !stale || !bytes.Equal(got, plain) {
		t.Fatalf("plain text through identity: %q stale=%v err=%v", got, stale, err)
	}
	// Without identity, plain text is refused.
	if _, _, err := transformer(t, aesgcmP("k1", 32, 1)).TransformFromStorage(plain, etcdKey); err == nil || !strings.Contains(err.Error(), "no identity") {
		t.Fatalf("plain text without identity: %v", err)
	}
	// Identity first writes plain text and still reads what a later key sealed.
	sealed, _ := transformer(t, aesgcmP("k1", 32, 1)).TransformToStorage(plain, etcdKey)
	off := transformer(t, identityP, aesgcmP("k1", 32, 1))
	written, _ := off.TransformToStorage(plain, etcdKey)
	if !bytes.Equal(written, plain) {
		t.Fatalf("identity first wrote %q", written)
	}
	if got, stale, err := off.TransformFromStorage(sealed, etcdKey); err != nil || !stale || !bytes.Equal(got, plain) {
		t.Fatalf("encrypted value with identity first: %q stale=%v err=%v", got, stale, err)
	}
	// Identity alone never hands out ciphertext as if it were an object.
	if _, _, err := transformer(t, identityP).TransformFromStorage(sealed, etcdKey); !errors.Is(err, ErrEncrypted) {
		t.Fatalf("identity alone on encrypted data: %v", err)
	}
}

func TestRotation(t *testing.T) {
	plain := []byte("the object")
	old := transformer(t, aesgcmP("old", 32, 1), identityP)
	stored, _ := old.TransformToStorage(plain, etcdKey)

	// Step 1: the new key first, the old one still listed.
	both := transformer(t, secretboxP("new", 2), aesgcmP("old", 32, 1), identityP)
	got, stale, err := both.TransformFromStorage(stored, etcdKey)
	if err != nil || !stale || !bytes.Equal(got, plain) {
		t.Fatalf("old data after adding the new key: %q stale=%v err=%v", got, stale, err)
	}
	// Step 2: rewriting moves it to the new key.
	rewritten, _ := both.TransformToStorage(got, etcdKey)
	if !bytes.HasPrefix(rewritten, []byte("k8s:enc:secretbox:v1:new:")) {
		t.Fatalf("rewritten under %q", keyPrefixOf(rewritten))
	}
	// Step 3: the old key dropped, the rewritten value reads fresh...
	onlyNew := transformer(t, secretboxP("new", 2), identityP)
	if got, stale, err := onlyNew.TransformFromStorage(rewritten, etcdKey); err != nil || stale || !bytes.Equal(got, plain) {
		t.Fatalf("rewritten data after dropping the old key: %q stale=%v err=%v", got, stale, err)
	}
	// ...and a value nobody rewrote is reported, naming its key.
	if _, _, err := onlyNew.TransformFromStorage(stored, etcdKey); !errors.Is(err, ErrEncrypted) || !strings.Contains(err.Error(), ":old:") {
		t.Fatalf("not rewritten, old key dropped: %v", err)
	}
}
