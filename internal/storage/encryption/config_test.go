package encryption

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestParseConfigRefusesBadInput(t *testing.T) {
	head := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"not yaml", "{", "parse"},
		{"wrong kind", "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfig\nresources: [{resources: [secrets], providers: [{identity: {}}]}]", `kind: Unsupported value: "EncryptionConfig"`},
		{"wrong apiVersion", "apiVersion: v1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{identity: {}}]}]", `apiVersion: Unsupported value: "v1"`},
		{"no resources", head, "resources: Required value"},
		{"no resource names", head + "resources: [{resources: [], providers: [{identity: {}}]}]", "resources[0].resources: Required value"},
		{"no providers", head + "resources: [{resources: [secrets]}]", "resources[0].providers: Required value"},
		{"misspelt provider", head + "resources: [{resources: [secrets], providers: [{aesgmc: {keys: []}}]}]", `unknown field "aesgmc"`},
		{"empty provider", head + "resources: [{resources: [secrets], providers: [{}]}]", "resources[0].providers[0]: Required value: provider does not contain any"},
		{"two providers in one element", head + "resources: [{resources: [secrets], providers: [{identity: {}, aesgcm: {keys: [{name: k, secret: " + b64(32, 1) + "}]}}]}]", "resources[0].providers[0]: Invalid value: \"\": more than one provider"},
		{"aescbc", head + "resources: [{resources: [secrets], providers: [{aescbc: {keys: [{name: k, secret: " + b64(32, 1) + "}]}}]}]", `resources[0].providers[0].aescbc: Unsupported value: "aescbc"`},
		{"kms", head + "resources: [{resources: [secrets], providers: [{kms: {name: x, endpoint: unix:///k.sock}}]}]", `resources[0].providers[0].kms: Unsupported value: "kms"`},
		{"no keys", head + "resources: [{resources: [secrets], providers: [{aesgcm: {keys: []}}]}]", "resources[0].providers[0].aesgcm.keys: Required value"},
		{"key without name", head + "resources: [{resources: [secrets], providers: [{aesgcm: {keys: [{secret: " + b64(32, 1) + "}]}}]}]", "resources[0].providers[0].aesgcm.keys[0].name: Required value"},
		{"colon in name", head + "resources: [{resources: [secrets], providers: [{aesgcm: {keys: [{name: 'a:b', secret: " + b64(32, 1) + "}]}}]}]", "resources[0].providers[0].aesgcm.keys[0].name: Invalid value: \"a:b\": must not contain ':'"},
		{"duplicate key name", head + "resources: [{resources: [secrets], providers: [{aesgcm: {keys: [{name: k, secret: " + b64(32, 1) + "}, {name: k, secret: " + b64(32, 2) + "}]}}]}]", "resources[0].providers[0].aesgcm.keys[1].name: Duplicate value"},
		{"key without secret", head + "resources: [{resources: [secrets], providers: [{secretbox: {keys: [{name: k}]}}]}]", "resources[0].providers[0].secretbox.keys[0].secret: Required value"},
		{"secret not base64", head + "resources: [{resources: [secrets], providers: [{aesgcm: {keys: [{name: k, secret: '!!!'}]}}]}]", "resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: \"REDACTED\": secrets must be base64 encoded"},
		{"aes key length", head + "resources: [{resources: [secrets], providers: [{aesgcm: {keys: [{name: k, secret: " + b64(20, 1) + "}]}}]}]", "secret is not of the expected length, got 20, expected one of [16 24 32]"},
		{"secretbox key length", head + "resources: [{resources: [secrets], providers: [{secretbox: {keys: [{name: k, secret: " + b64(16, 1) + "}]}}]}]", "resources[0].providers[0].secretbox.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 16, expected one of [32]"},
		{"capital letters", head + "resources: [{resources: [Secrets], providers: [{identity: {}}]}]", "resources[0].resources[0]: Invalid value: \"Secrets\": resource name should not contain capital letters"},
		{"star alone", head + "resources: [{resources: ['*'], providers: [{identity: {}}]}]", "use '*.' to encrypt all the resources from core API group"},
		{"events group", head + "resources: [{resources: [events.events.k8s.io], providers: [{identity: {}}]}]", "Use 'events' instead"},
		{"resource across groups", head + "resources: [{resources: ['secrets.*'], providers: [{identity: {}}]}]", "encrypting the same resource across groups is not supported"},
		{"duplicate resource", head + "resources: [{resources: [secrets, secrets], providers: [{identity: {}}]}]", "resources[0].resources[1]: Duplicate value: \"secrets\""},
		{"overlap in one list", head + "resources: [{resources: [secrets, '*.'], providers: [{identity: {}}]}]", "resources[0].resources[0]: Invalid value: \"secrets\": using overlapping resources"},
		{"masked by an earlier entry", head + "resources: [{resources: ['*.*'], providers: [{identity: {}}]}, {resources: [secrets], providers: [{identity: {}}]}]", `resources[1].resources[0]: Invalid value: "secrets": masked by resources[0].resources[0] "*.*"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), b64(32, 1)) || strings.Contains(err.Error(), b64(20, 1)) {
				t.Fatalf("the error shows a secret: %v", err)
			}
		})
	}
}

func TestConfigFor(t *testing.T) {
	c, err := ParseConfig([]byte(`apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [events]
  providers: [{identity: {}}]
- resources: [secrets, configmaps]
  providers: [{aesgcm: {keys: [{name: a, secret: ` + b64(32, 1) + `}]}}]
- resources: ['*.apps']
  providers: [{aesgcm: {keys: [{name: b, secret: ` + b64(32, 2) + `}]}}]
- resources: ['*.*']
  providers: [{secretbox: {keys: [{name: c, secret: ` + b64(32, 3) + `}]}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	prefixOf := func(gr schema.GroupResource) string {
		tr := c.For(gr)
		if tr == nil {
			return "<none>"
		}
		out, err := tr.TransformToStorage([]byte("x"), "/k")
		if err != nil {
			t.Fatal(err)
		}
		return string(keyPrefixOf(out))
	}
	for gr, want := range map[schema.GroupResource]string{
		{Resource: "events"}:                               "x",
		{Resource: "secrets"}:                              "k8s:enc:aesgcm:v1:a:",
		{Resource: "configmaps"}:                           "k8s:enc:aesgcm:v1:a:",
		{Group: "apps", Resource: "deployments"}:           "k8s:enc:aesgcm:v1:b:",
		{Resource: "pods"}:                                 "k8s:enc:secretbox:v1:c:",
		{Group: "coordination.k8s.io", Resource: "leases"}: "k8s:enc:secretbox:v1:c:",
	} {
		if got := prefixOf(gr); got != want {
			t.Errorf("%s: stored as %q, want %q", gr, got, want)
		}
	}
	only, err := ParseConfig([]byte(configYAML(identityP)))
	if err != nil {
		t.Fatal(err)
	}
	if only.For(schema.GroupResource{Resource: "configmaps"}) != nil {
		t.Fatal("configmaps got a transformer from a secrets-only config")
	}
	entries := c.Entries()
	if len(entries) != 4 || entries[1].Field != "resources[1].resources" || strings.Join(entries[1].Resources, ",") != "secrets,configmaps" {
		t.Fatalf("entries: %+v", entries)
	}
}

func TestLoadOrCreateDefault(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pki", "encryption-config.yaml")
	c, err := LoadOrCreateDefault(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	if dst, _ := os.Stat(filepath.Dir(path)); dst.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, want 0700", dst.Mode().Perm())
	}
	stored, err := c.For(secrets).TransformToStorage([]byte("value"), etcdKey)
	if err != nil || !strings.HasPrefix(string(stored), "k8s:enc:secretbox:v1:"+DefaultKeyName+":") {
		t.Fatalf("default config stores %q (%v)", stored, err)
	}
	// Plain text from before encryption still reads.
	if got, stale, err := c.For(secrets).TransformFromStorage([]byte("plain"), etcdKey); err != nil || !stale || string(got) != "plain" {
		t.Fatalf("default config on plain text: %q %v %v", got, stale, err)
	}
	if c.For(schema.GroupResource{Resource: "configmaps"}) != nil {
		t.Fatal("the default config encrypts more than Secrets")
	}
	// The second start reuses the key.
	first, _ := os.ReadFile(path)
	c2, err := LoadOrCreateDefault(path)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(first) {
		t.Fatal("the default config was rewritten")
	}
	if got, _, err := c2.For(secrets).TransformFromStorage(stored, etcdKey); err != nil || string(got) != "value" {
		t.Fatalf("after a restart: %q %v", got, err)
	}
	// A damaged file is an error naming it, never silently replaced.
	if err := os.WriteFile(path, []byte("kind: ["), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateDefault(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("damaged default config: %v", err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "pki", "*.tmp")); len(leftovers) > 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}
