package apiserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/peapod/peapod/internal/storage"
	"github.com/peapod/peapod/internal/storage/encryption"
)

// rawSecret reads a Secret's value as etcd holds it, past the API and its
// encryption.
func rawSecret(t *testing.T, s *Server, ns, name string) []byte {
	t.Helper()
	kv, err := s.embedded.Store().Get(context.Background(), "/registry/secrets/"+ns+"/"+name)
	if err != nil {
		t.Fatalf("raw read of secret %s/%s: %v", ns, name, err)
	}
	return kv.Value
}

// rawSecrets returns every stored Secret value by key.
func rawSecrets(t *testing.T, s *Server) map[string][]byte {
	t.Helper()
	l, err := s.embedded.Store().List(context.Background(), "/registry/secrets/", storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, kv := range l.Items {
		out[kv.Key] = kv.Value
	}
	return out
}

func assertSealed(t *testing.T, raw []byte, prefix string, secrets ...string) {
	t.Helper()
	if !bytes.HasPrefix(raw, []byte(prefix)) {
		t.Fatalf("stored value starts %q, want %q", raw[:min(len(raw), 40)], prefix)
	}
	for _, v := range secrets {
		if bytes.Contains(raw, []byte(v)) || bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString([]byte(v)))) {
			t.Fatalf("%q is readable in the stored value", v)
		}
	}
}

const defaultPrefix = "k8s:enc:secretbox:v1:" + encryption.DefaultKeyName + ":"

// TestSecretsEncryptedAtRest: with no configuration, Secrets are stored
// sealed by the generated key, and every verb reads and writes them as
// before: get, list, watch, update, merge and strategic patches, apply.
func TestSecretsEncryptedAtRest(t *testing.T) {
	dir := tempDir(t)
	s, stop := startServer(t, dir)
	c, _ := clientFor(t, s.Kubeconfig())
	ctx := context.Background()

	w, err := c.CoreV1().Secrets("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": "correct-horse-battery"}}
	if _, err := c.CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	assertSealed(t, rawSecret(t, s, "default", "db"), defaultPrefix, "correct-horse-battery")

	got, err := c.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
	if err != nil || string(got.Data["password"]) != "correct-horse-battery" {
		t.Fatalf("get: %v %v", got, err)
	}
	l, err := c.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 1 || string(l.Items[0].Data["password"]) != "correct-horse-battery" {
		t.Fatalf("list: %v %v", l, err)
	}
	select {
	case ev := <-w.ResultChan():
		if ev.Type != watch.Added || string(ev.Object.(*corev1.Secret).Data["password"]) != "correct-horse-battery" {
			t.Fatalf("watch: %v %+v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}

	got.Data["user"] = []byte("admin-user")
	if _, err := c.CoreV1().Secrets("default").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Secrets("default").Patch(ctx, "db", types.MergePatchType,
		[]byte(`{"stringData":{"token":"merge-patched-token"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Secrets("default").Patch(ctx, "db", types.StrategicMergePatchType,
		[]byte(`{"metadata":{"labels":{"patched":"yes"}},"data":{"key":"`+base64.StdEncoding.EncodeToString([]byte("strategic-key"))+`"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Secrets("default").Apply(ctx, corev1ac.Secret("applied", "default").WithStringData(map[string]string{"api": "applied-api-key"}),
		metav1.ApplyOptions{FieldManager: "test"}); err != nil {
		t.Fatal(err)
	}
	got, err = c.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"password": "correct-horse-battery", "user": "admin-user", "token": "merge-patched-token", "key": "strategic-key"} {
		if string(got.Data[k]) != v {
			t.Fatalf("after update and patches, %s = %q, want %q", k, got.Data[k], v)
		}
	}
	if got.Labels["patched"] != "yes" {
		t.Fatalf("labels: %v", got.Labels)
	}
	assertSealed(t, rawSecret(t, s, "default", "db"), defaultPrefix, "correct-horse-battery", "admin-user", "merge-patched-token", "strategic-key")
	applied, err := c.CoreV1().Secrets("default").Get(ctx, "applied", metav1.GetOptions{})
	if err != nil || string(applied.Data["api"]) != "applied-api-key" {
		t.Fatalf("applied: %v %v", applied, err)
	}
	assertSealed(t, rawSecret(t, s, "default", "applied"), defaultPrefix, "applied-api-key")

	// Other resources are stored as they were.
	if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Data: map[string]string{"k": "visible-value"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := s.embedded.Store().Get(ctx, "/registry/configmaps/default/plain")
	if err != nil || !bytes.Contains(kv.Value, []byte("visible-value")) {
		t.Fatalf("configmap stored as %q (%v)", kv.Value, err)
	}

	// The key and the etcd PKI are private files.
	for _, f := range []string{EncryptionConfigFile, "etcd/ca.key", "etcd/server.key", "apiserver-etcd-client.key"} {
		st, err := os.Stat(filepath.Join(dir, "pki", f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("pki/%s: %v %v", f, st.Mode(), err)
		}
	}
	keyFile, _ := os.ReadFile(filepath.Join(dir, "pki", EncryptionConfigFile))
	caFile, _ := os.ReadFile(filepath.Join(dir, "pki", "etcd", "ca.crt"))

	// A restart reuses the key and the etcd CA.
	stop()
	s2, stop2 := startServer(t, dir)
	defer stop2()
	c2, _ := clientFor(t, s2.Kubeconfig())
	if got, err := c2.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{}); err != nil || string(got.Data["password"]) != "correct-horse-battery" {
		t.Fatalf("after a restart: %v %v", got, err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "pki", EncryptionConfigFile)); !bytes.Equal(again, keyFile) {
		t.Fatal("the encryption key changed across a restart")
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "pki", "etcd", "ca.crt")); !bytes.Equal(again, caFile) {
		t.Fatal("the etcd CA changed across a restart")
	}
}

func writeEncryptionConfig(t *testing.T, path string, providers ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n")
	for _, p := range providers {
		fmt.Fprintf(&b, "  - %s\n", p)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// defaultKeyProvider returns the secretbox provider of the generated
// configuration in dir, to carry the key into a hand-written file.
func defaultKeyProvider(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "pki", EncryptionConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "secret: "); ok {
			return fmt.Sprintf("secretbox: {keys: [{name: %s, secret: %s}]}", encryption.DefaultKeyName, s)
		}
	}
	t.Fatalf("no key in %s", data)
	return ""
}

// TestEncryptionKeyRotation follows the documented rotation: a new key
// first, restart, rewrite every Secret, drop the old key, restart. Old
// data stays readable throughout; after the rewrite nothing is stored
// under the old key. (A Secret nobody rewrote fails to read, naming its
// key: internal/storage/encryption's TestRotation and TestStoreStaleAndUnreadable.)
func TestEncryptionKeyRotation(t *testing.T) {
	dir := tempDir(t)
	ctx := context.Background()
	s, stop := startServer(t, dir)
	c, _ := clientFor(t, s.Kubeconfig())
	for i := 0; i < 3; i++ {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d", i)}, StringData: map[string]string{"v": fmt.Sprintf("value-%d", i)}}
		if _, err := c.CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	stop()

	oldKey := defaultKeyProvider(t, dir)
	newKey := fmt.Sprintf("aesgcm: {keys: [{name: key2, secret: %s}]}", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	cfgPath := filepath.Join(dir, "encryption.yaml")
	start := func() (*Server, kubernetes.Interface, func()) {
		s, stop := startServerConfig(t, Config{DataDir: dir, Listen: "127.0.0.1:0", EncryptionProviderConfig: cfgPath}, nil)
		c, _ := clientFor(t, s.Kubeconfig())
		return s, c, stop
	}
	readAll := func(c kubernetes.Interface) {
		t.Helper()
		for i := 0; i < 3; i++ {
			got, err := c.CoreV1().Secrets("default").Get(ctx, fmt.Sprintf("s%d", i), metav1.GetOptions{})
			if err != nil || string(got.Data["v"]) != fmt.Sprintf("value-%d", i) {
				t.Fatalf("s%d: %v %v", i, got, err)
			}
		}
	}

	// 1. The new key first, the old one kept: old data reads, new writes seal with key2.
	writeEncryptionConfig(t, cfgPath, newKey, oldKey, "identity: {}")
	s, c, stop = start()
	readAll(c)
	assertSealed(t, rawSecret(t, s, "default", "s0"), defaultPrefix, "value-0")
	if _, err := c.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "fresh"}, StringData: map[string]string{"v": "fresh-value"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	assertSealed(t, rawSecret(t, s, "default", "fresh"), "k8s:enc:aesgcm:v1:key2:", "fresh-value")

	// 2. Rewrite every Secret unchanged, as `kubectl get secrets -A -o json
	// | kubectl replace -f -` does.
	l, err := c.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Items {
		before := l.Items[i].ResourceVersion
		out, err := c.CoreV1().Secrets(l.Items[i].Namespace).Update(ctx, &l.Items[i], metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("rewrite %s: %v", l.Items[i].Name, err)
		}
		if l.Items[i].Name != "fresh" && out.ResourceVersion == before {
			t.Fatalf("rewriting %s (sealed by the old key) was skipped as a no-op", l.Items[i].Name)
		}
	}
	stored := rawSecrets(t, s)
	if len(stored) != len(l.Items) {
		t.Fatalf("%d Secrets stored, %d listed", len(stored), len(l.Items))
	}
	for key, raw := range stored {
		if !bytes.HasPrefix(raw, []byte("k8s:enc:aesgcm:v1:key2:")) {
			t.Fatalf("%s is still stored as %q after the rewrite", key, raw[:min(len(raw), 30)])
		}
	}
	// An unchanged Secret already on the current key is not rewritten.
	fresh, _ := c.CoreV1().Secrets("default").Get(ctx, "fresh", metav1.GetOptions{})
	if out, err := c.CoreV1().Secrets("default").Update(ctx, fresh, metav1.UpdateOptions{}); err != nil || out.ResourceVersion != fresh.ResourceVersion {
		t.Fatalf("a no-op update of a fresh Secret wrote: %v %v", out.ResourceVersion, err)
	}
	stop()

	// 3. The old key dropped: everything reads, lists and watches.
	writeEncryptionConfig(t, cfgPath, newKey, "identity: {}")
	_, c, stop = start()
	defer stop()
	readAll(c)
	l, err = c.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != len(stored) {
		t.Fatalf("list after rotation: %d items, %v", len(l.Items), err)
	}
	w, err := c.CoreV1().Secrets("default").Watch(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for seen := 0; seen < len(stored); seen++ {
		select {
		case ev := <-w.ResultChan():
			if ev.Type != watch.Added {
				t.Fatalf("watch after rotation: %v %+v", ev.Type, ev.Object)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch after rotation: %d of %d Secrets", seen, len(stored))
		}
	}
}

// TestEncryptionReadsDataFromBeforeEncryption: Secrets written with
// encryption off (identity first, as an older peapod stored them) read
// through the default configuration's identity and move to the key when
// rewritten.
func TestEncryptionReadsDataFromBeforeEncryption(t *testing.T) {
	dir := tempDir(t)
	ctx := context.Background()
	plain := filepath.Join(dir, "plain.yaml")
	writeEncryptionConfig(t, plain, "identity: {}")
	s, stop := startServerConfig(t, Config{DataDir: dir, Listen: "127.0.0.1:0", EncryptionProviderConfig: plain}, nil)
	c, _ := clientFor(t, s.Kubeconfig())
	if _, err := c.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "old"}, StringData: map[string]string{"v": "from-before"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if raw := rawSecret(t, s, "default", "old"); bytes.HasPrefix(raw, []byte("k8s:enc:")) {
		t.Fatalf("identity stored %q", raw[:20])
	}
	stop()

	s, stop = startServer(t, dir)
	defer stop()
	c, _ = clientFor(t, s.Kubeconfig())
	got, err := c.CoreV1().Secrets("default").Get(ctx, "old", metav1.GetOptions{})
	if err != nil || string(got.Data["v"]) != "from-before" {
		t.Fatalf("plain Secret through the default config: %v %v", got, err)
	}
	if _, err := c.CoreV1().Secrets("default").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	assertSealed(t, rawSecret(t, s, "default", "old"), defaultPrefix, "from-before")
}

// TestEncryptionConfigErrors: a bad file, a name peapod does not serve and
// contradictory etcd flags stop the server with an error naming the
// field or flag.
func TestEncryptionConfigErrors(t *testing.T) {
	dir := tempDir(t)
	ctx := context.Background()
	cfgPath := filepath.Join(dir, "enc.yaml")
	for _, tc := range []struct {
		name   string
		config string
		cfg    Config
		want   string
	}{
		{name: "missing file", cfg: Config{EncryptionProviderConfig: filepath.Join(dir, "nope.yaml")}, want: "--encryption-provider-config: read encryption config"},
		{name: "short key", config: "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{aesgcm: {keys: [{name: k, secret: " + base64.StdEncoding.EncodeToString([]byte("short")) + "}]}}]}]\n",
			want: "resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 5"},
		{name: "typo in a resource", config: "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [secret], providers: [{identity: {}}]}]\n",
			want: `resources[0].resources[0]: Invalid value: "secret": not a resource peapod serves`},
		{name: "certfile without keyfile", cfg: Config{EtcdServers: []string{"https://127.0.0.1:1"}, EtcdCertFile: "c.crt"}, want: "--etcd-certfile and --etcd-keyfile go together"},
		{name: "etcd TLS for the embedded etcd", cfg: Config{EtcdCAFile: "ca.crt"}, want: "need --etcd-servers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.DataDir, cfg.Listen = filepath.Join(dir, "data-"+strings.ReplaceAll(tc.name, " ", "-")), "127.0.0.1:0"
			if tc.config != "" {
				if err := os.WriteFile(cfgPath, []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg.EncryptionProviderConfig = cfgPath
			}
			s, err := New(ctx, cfg)
			if err == nil {
				s.close()
				t.Fatal("the server started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
		})
	}
}
