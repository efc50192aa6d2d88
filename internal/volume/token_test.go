package volume

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/testutil"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
)

// tokenMinter is the token half of fakeSources: it mints unsigned
// JWT-shaped tokens with the claims the API server sets and records the
// requests. Guarded by fakeSources.mu.
type tokenMinter struct {
	now      func() time.Time
	requests []tokenCall
	fail     error
}

type tokenCall struct {
	ns, sa string
	req    authenticationv1.TokenRequest
}

func (f *fakeSources) Token(_ context.Context, ns, sa string, req *authenticationv1.TokenRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens.requests = append(f.tokens.requests, tokenCall{ns, sa, *req.DeepCopy()})
	if f.tokens.fail != nil {
		return "", f.tokens.fail
	}
	now := time.Now
	if f.tokens.now != nil {
		now = f.tokens.now
	}
	auds := req.Spec.Audiences
	if len(auds) == 0 {
		auds = []string{"https://kubernetes.default.svc.cluster.local"}
	}
	return fakeToken(now(), time.Duration(*req.Spec.ExpirationSeconds)*time.Second, sa, string(req.Spec.BoundObjectRef.UID), auds, len(f.tokens.requests)), nil
}

func (f *fakeSources) tokenCalls() []tokenCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tokenCall(nil), f.tokens.requests...)
}

func fakeToken(iat time.Time, ttl time.Duration, sa, podUID string, auds []string, serial int) string {
	claims := map[string]any{"aud": auds, "iat": iat.Unix(), "exp": iat.Add(ttl).Unix(), "nbf": iat.Unix(), "jti": fmt.Sprint(serial),
		"kubernetes.io": map[string]any{"namespace": "ns1", "serviceaccount": map[string]string{"name": sa, "uid": "sa-uid"},
			"pod": map[string]string{"name": "web", "uid": podUID}}}
	body, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","kid":"k"}`)) + "." + enc.EncodeToString(body) + "." + enc.EncodeToString([]byte("sig"))
}

func TestTokenFresh(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := testPod()
	aud := []string{"https://kubernetes.default.svc.cluster.local"}
	tok := fakeToken(t0, time.Hour, "default", "uid-1", aud, 1)
	for _, tc := range []struct {
		name string
		tok  string
		sa   string
		auds []string
		at   time.Time
		want bool
	}{
		{"new", tok, "default", nil, t0, true},
		{"at 79%", tok, "default", nil, t0.Add(47 * time.Minute), true},
		{"at 80%", tok, "default", nil, t0.Add(48 * time.Minute), false},
		{"expired", tok, "default", nil, t0.Add(2 * time.Hour), false},
		{"same audience", tok, "default", aud, t0, true},
		{"other audience", tok, "default", []string{"vault"}, t0, false},
		{"other service account", tok, "robot", nil, t0, false},
		{"other pod", fakeToken(t0, time.Hour, "default", "uid-2", aud, 1), "default", nil, t0, false},
		{"long-lived past 24h", fakeToken(t0, 7*24*time.Hour, "default", "uid-1", aud, 1), "default", nil, t0.Add(25 * time.Hour), false},
		{"long-lived within 24h", fakeToken(t0, 7*24*time.Hour, "default", "uid-1", aud, 1), "default", nil, t0.Add(23 * time.Hour), true},
		{"not a JWT", "opaque-token", "default", nil, t0, false},
		{"garbage claims", "a.!!!.c", "default", nil, t0, false},
	} {
		if got := tokenFresh(tc.tok, pod, tc.sa, tc.auds, tc.at); got != tc.want {
			t.Errorf("%s: fresh = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// kubeAPIAccess is the volume the API server's ServiceAccount admission adds.
func kubeAPIAccess(defaultMode *int32) corev1.Volume {
	return corev1.Volume{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: defaultMode,
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr(int64(3607)), Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		}}}}
}

func TestServiceAccountTokenProjection(t *testing.T) {
	testutil.RequiresRoot(t) // projected volumes are tmpfs
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { return now }
	src := newSources()
	src.tokens.now = clock
	src.configMaps["ns1/kube-root-ca.crt"] = &corev1.ConfigMap{Data: map[string]string{"ca.crt": "CA1"}}
	src.configMaps["ns1/app"].Data["mode"] = "prod"
	m := NewManager(nil, WithSources(src), WithClock(clock))
	pd := podDir(t)
	pod := testPod(kubeAPIAccess(ptr(int32(0o644))),
		corev1.Volume{Name: "vault", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: "vault", ExpirationSeconds: ptr(int64(600)), Path: "sub/vault-token"}}}}}},
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}}},
	)
	pod.Spec.ServiceAccountName = "robot"
	prep, err := m.Setup(t.Context(), pd, pod)
	if err != nil {
		t.Fatal(err)
	}
	kaa, vault := prep.Paths["kube-api-access-abcde"], prep.Paths["vault"]

	calls := src.tokenCalls()
	if len(calls) != 2 {
		t.Fatalf("%d token requests, want 2", len(calls))
	}
	for i, want := range []struct {
		auds []string
		secs int64
	}{{nil, 3607}, {[]string{"vault"}, 600}} {
		c := calls[i]
		ref := c.req.Spec.BoundObjectRef
		if c.ns != "ns1" || c.sa != "robot" || fmt.Sprint(c.req.Spec.Audiences) != fmt.Sprint(want.auds) || *c.req.Spec.ExpirationSeconds != want.secs ||
			ref == nil || *ref != (authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: "web", UID: "uid-1"}) {
			t.Errorf("request %d: %+v", i, c)
		}
	}
	token1 := readVol(t, kaa, "token")
	if !tokenFresh(token1, pod, "robot", nil, now) || readVol(t, kaa, "ca.crt") != "CA1" || readVol(t, kaa, "namespace") != "ns1" {
		t.Fatalf("kube-api-access contents: %q %q %q", token1, readVol(t, kaa, "ca.crt"), readVol(t, kaa, "namespace"))
	}
	// defaultMode applies to the token; without one it is 0600.
	if mo := modeOf(t, filepath.Join(kaa, "token")); mo != 0o644 {
		t.Errorf("token mode %v, want 0644 (defaultMode)", mo)
	}
	if mo := modeOf(t, filepath.Join(vault, "sub/vault-token")); mo != 0o600 {
		t.Errorf("vault token mode %v, want 0600", mo)
	}
	if n := len(tmpfsAt(t, kaa)); n != 1 {
		t.Errorf("projected volume on %d tmpfs mounts", n)
	}
	dataOf := func(dir string) string {
		t.Helper()
		l, err := os.Readlink(filepath.Join(dir, dataDirName))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	kaaData, cfgData := dataOf(kaa), dataOf(prep.Paths["cfg"])

	// Setup again and Refresh soon after: the tokens are reused and
	// nothing is rewritten.
	now = now.Add(5 * time.Minute)
	if _, err := m.Setup(t.Context(), pd, pod); err != nil {
		t.Fatal(err)
	}
	if err := m.Refresh(t.Context(), pd, pod); err != nil {
		t.Fatal(err)
	}
	if n := len(src.tokenCalls()); n != 2 || dataOf(kaa) != kaaData || dataOf(prep.Paths["cfg"]) != cfgData {
		t.Fatalf("unchanged refresh: %d requests, ..data %s→%s, %s→%s", n, kaaData, dataOf(kaa), cfgData, dataOf(prep.Paths["cfg"]))
	}

	// Past 80% of the vault token's 600s (and with the CA and the app
	// config changed): the vault token and the changed volumes are renewed,
	// the 3607s token is kept.
	now = now.Add(6 * time.Minute) // 11 min > 480s
	src.mu.Lock()
	src.configMaps["ns1/kube-root-ca.crt"] = &corev1.ConfigMap{Data: map[string]string{"ca.crt": "CA2"}}
	src.configMaps["ns1/app"].Data["mode"] = "staging"
	src.mu.Unlock()
	vaultOld := readVol(t, vault, "sub/vault-token")
	if err := m.Refresh(t.Context(), pd, pod); err != nil {
		t.Fatal(err)
	}
	calls = src.tokenCalls()
	if len(calls) != 3 || calls[2].req.Spec.Audiences[0] != "vault" {
		t.Fatalf("requests after refresh: %+v", calls)
	}
	if v := readVol(t, vault, "sub/vault-token"); v == vaultOld || !tokenFresh(v, pod, "robot", []string{"vault"}, now) {
		t.Errorf("vault token not renewed")
	}
	if readVol(t, kaa, "token") != token1 || readVol(t, kaa, "ca.crt") != "CA2" || readVol(t, prep.Paths["cfg"], "mode") != "staging" {
		t.Errorf("after refresh: token kept=%v ca=%q mode=%q", readVol(t, kaa, "token") == token1, readVol(t, kaa, "ca.crt"), readVol(t, prep.Paths["cfg"], "mode"))
	}

	// At 80% of 3607s the main token rotates too. If the API fails, the
	// old contents stay and Refresh says why.
	now = now.Add(50 * time.Minute)
	src.mu.Lock()
	src.tokens.fail = errors.New("apiserver unreachable")
	src.mu.Unlock()
	err = m.Refresh(t.Context(), pd, pod)
	if err == nil || !errors.Is(err, src.tokens.fail) {
		t.Fatalf("refresh with a failing API: %v", err)
	}
	if readVol(t, kaa, "token") != token1 || readVol(t, kaa, "ca.crt") != "CA2" {
		t.Errorf("failed refresh changed the volume")
	}
	src.mu.Lock()
	src.tokens.fail = nil
	src.mu.Unlock()
	if err := m.Refresh(t.Context(), pd, pod); err != nil {
		t.Fatal(err)
	}
	if tok := readVol(t, kaa, "token"); tok == token1 || !tokenFresh(tok, pod, "robot", nil, now) {
		t.Errorf("token not rotated at 80%%")
	}

	// A recreated pod (new uid) gets new tokens even if the files exist.
	pod2 := pod.DeepCopy()
	pod2.UID = "uid-2"
	before := len(src.tokenCalls())
	if err := m.Refresh(t.Context(), pd, pod2); err != nil {
		t.Fatal(err)
	}
	if n := len(src.tokenCalls()) - before; n != 2 {
		t.Errorf("%d token requests for a new pod uid, want 2", n)
	}

	if err := m.Teardown(t.Context(), pd, pod); err != nil {
		t.Fatal(err)
	}
	// Refresh of a torn-down pod does nothing.
	if err := m.Refresh(t.Context(), pd, pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pd, "volumes")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refresh recreated volumes: %v", err)
	}
}

func TestServiceAccountTokenFSGroupAndErrors(t *testing.T) {
	testutil.RequiresRoot(t)
	src := newSources()
	src.configMaps["ns1/kube-root-ca.crt"] = &corev1.ConfigMap{Data: map[string]string{"ca.crt": "CA"}}
	pd := podDir(t)
	pod := testPod(kubeAPIAccess(ptr(int32(0o644))))
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr(int64(2345))}
	prep, err := NewManager(nil, WithSources(src)).Setup(t.Context(), pd, pod)
	if err != nil {
		t.Fatal(err)
	}
	kaa := prep.Paths["kube-api-access-abcde"]
	// With fsGroup the kubelet writes 0600 and group read is added: 0640.
	if mo := modeOf(t, filepath.Join(kaa, "token")); mo != 0o640 {
		t.Errorf("token mode with fsGroup %v, want 0640", mo)
	}
	if mo := modeOf(t, filepath.Join(kaa, "ca.crt")); mo != 0o644 {
		t.Errorf("ca.crt mode with fsGroup %v, want 0644", mo)
	}
	// Refresh recognises the fsGroup modes as current.
	data, _ := os.Readlink(filepath.Join(kaa, dataDirName))
	m := NewManager(nil, WithSources(src))
	if err := m.Refresh(t.Context(), pd, pod); err != nil {
		t.Fatal(err)
	}
	if d, _ := os.Readlink(filepath.Join(kaa, dataDirName)); d != data || len(src.tokenCalls()) != 1 {
		t.Errorf("refresh rewrote an unchanged volume (%s→%s, %d requests)", data, d, len(src.tokenCalls()))
	}

	// No Sources, or a failing token request: Setup fails naming the field
	// and leaves nothing behind.
	pd2 := podDir(t)
	pod2 := testPod(kubeAPIAccess(nil))
	pod2.UID = "uid-x"
	if _, err := NewManager(nil).Setup(t.Context(), pd2, pod2); err == nil ||
		err.Error() != `set up volume "kube-api-access-abcde" of pod ns1/web: spec.volumes[0].projected.sources[0].serviceAccountToken: not supported yet: no token source configured` {
		t.Fatalf("without sources: %v", err)
	}
	src.tokens.fail = errors.New("forbidden")
	if _, err := NewManager(nil, WithSources(src)).Setup(t.Context(), pd2, pod2); err == nil || !errors.Is(err, src.tokens.fail) {
		t.Fatalf("failing token: %v", err)
	}
	if _, err := os.Stat(filepath.Join(pd2, "volumes", PluginProjected, "kube-api-access-abcde")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed setup left the volume: %v", err)
	}
}
