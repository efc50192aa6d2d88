package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/peapod/peapod/internal/testutil"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// fakeSources serves ConfigMaps and Secrets from maps keyed "ns/name",
// and tokens minted by fakeToken (see token_test.go).
type fakeSources struct {
	mu         sync.Mutex
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	claims     map[string]*corev1.PersistentVolumeClaim
	volumes    map[string]*corev1.PersistentVolume
	tokens     tokenMinter
}

func (f *fakeSources) PersistentVolumeClaim(_ context.Context, ns, name string) (*corev1.PersistentVolumeClaim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.claims[ns+"/"+name]; ok {
		return c.DeepCopy(), nil
	}
	return nil, fmt.Errorf("persistentvolumeclaim %s/%s: %w", ns, name, ErrNotFound)
}

func (f *fakeSources) PersistentVolume(_ context.Context, name string) (*corev1.PersistentVolume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.volumes[name]; ok {
		return v.DeepCopy(), nil
	}
	return nil, fmt.Errorf("persistentvolume %s: %w", name, ErrNotFound)
}

var _ Sources = (*fakeSources)(nil)

func (f *fakeSources) ConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cm, ok := f.configMaps[ns+"/"+name]; ok {
		return cm.DeepCopy(), nil
	}
	return nil, fmt.Errorf("configmap %s/%s: %w", ns, name, ErrNotFound)
}

func (f *fakeSources) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.secrets[ns+"/"+name]; ok {
		return s.DeepCopy(), nil
	}
	return nil, fmt.Errorf("secret %s/%s: %w", ns, name, ErrNotFound)
}

func newSources() *fakeSources {
	return &fakeSources{
		configMaps: map[string]*corev1.ConfigMap{
			"ns1/app": {
				Data:       map[string]string{"app.conf": "listen 80\n", "mode": "prod"},
				BinaryData: map[string][]byte{"blob.bin": {0, 1, 2}},
			},
		},
		secrets: map[string]*corev1.Secret{
			"ns1/creds": {
				Data:       map[string][]byte{"password": []byte("hunter2")},
				StringData: map[string]string{"user": "admin"},
			},
		},
	}
}

// readVol reads a file through the volume's user-visible path.
func readVol(t *testing.T, dir, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func modeOf(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestConfigMapVolume(t *testing.T) {
	src := newSources()
	m := NewManager(nil, WithSources(src))
	pd := podDir(t)
	pod := testPod(
		corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}}},
		corev1.Volume{Name: "items", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app"},
			DefaultMode:          ptr(int32(0o600)),
			Items: []corev1.KeyToPath{
				{Key: "app.conf", Path: "etc/nginx/app.conf"},
				{Key: "mode", Path: "mode.txt", Mode: ptr(int32(0o400))},
			}}}},
		corev1.Volume{Name: "missing-optional", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: ptr(true)}}},
	)
	prep, err := m.Setup(t.Context(), pd, pod)
	if err != nil {
		t.Fatal(err)
	}
	all := prep.Paths["all"]
	if want := filepath.Join(pd, "volumes", PluginConfigMap, "all"); all != want {
		t.Errorf("path = %s, want %s", all, want)
	}
	if got := readVol(t, all, "app.conf"); got != "listen 80\n" {
		t.Errorf("app.conf = %q", got)
	}
	if got := readVol(t, all, "blob.bin"); got != "\x00\x01\x02" {
		t.Errorf("blob.bin = %q", got)
	}
	if mo := modeOf(t, filepath.Join(all, "mode")); mo != 0o644 {
		t.Errorf("default mode %v", mo)
	}
	// The kubelet's layout: key -> ..data/key, ..data -> ..<timestamp>.
	if l, err := os.Readlink(filepath.Join(all, "app.conf")); err != nil || l != "..data/app.conf" {
		t.Errorf("user-visible link = %q, %v", l, err)
	}
	ts, err := os.Readlink(filepath.Join(all, "..data"))
	if err != nil || !strings.HasPrefix(ts, "..20") {
		t.Errorf("..data -> %q, %v", ts, err)
	}

	items := prep.Paths["items"]
	if got := readVol(t, items, "etc/nginx/app.conf"); got != "listen 80\n" {
		t.Errorf("nested item = %q", got)
	}
	if mo := modeOf(t, filepath.Join(items, "etc/nginx/app.conf")); mo != 0o600 {
		t.Errorf("defaultMode: %v", mo)
	}
	if mo := modeOf(t, filepath.Join(items, "mode.txt")); mo != 0o400 {
		t.Errorf("item mode: %v", mo)
	}
	if l, _ := os.Readlink(filepath.Join(items, "etc")); l != "..data/etc" {
		t.Errorf("top-level link for nested path = %q", l)
	}
	if _, err := os.Stat(filepath.Join(items, "blob.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unlisted key projected: %v", err)
	}
	if entries, _ := os.ReadDir(prep.Paths["missing-optional"]); len(entries) != 2 { // ..data and the ts dir
		t.Errorf("optional missing configmap dir: %v", entries)
	}

	// Setup again after an update: new content swapped in, old payload and
	// dropped keys gone.
	src.mu.Lock()
	src.configMaps["ns1/app"] = &corev1.ConfigMap{Data: map[string]string{"app.conf": "listen 8080\n"}}
	src.mu.Unlock()
	if _, err := m.Setup(t.Context(), pd, testPod(pod.Spec.Volumes[0])); err != nil {
		t.Fatal(err)
	}
	if got := readVol(t, all, "app.conf"); got != "listen 8080\n" {
		t.Errorf("after update app.conf = %q", got)
	}
	for _, gone := range []string{"mode", "blob.bin", ts} {
		if _, err := os.Lstat(filepath.Join(all, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after update: %v", gone, err)
		}
	}

	if err := m.Teardown(t.Context(), pd, pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pd, "volumes")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("volumes left: %v", err)
	}
}

func TestProjectionErrors(t *testing.T) {
	cmVol := func(name string, items []corev1.KeyToPath, optional *bool) corev1.Volume {
		return corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Items: items, Optional: optional}}}
	}
	for _, tc := range []struct {
		name    string
		sources Sources
		vol     corev1.Volume
		wantErr string
	}{
		{name: "no sources", vol: cmVol("app", nil, nil), wantErr: "spec.volumes[0].configMap: not supported yet"},
		{
			name: "no sources secret", vol: corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
			wantErr: "spec.volumes[0].secret: not supported yet",
		},
		{name: "missing configmap", sources: newSources(), vol: cmVol("nope", nil, nil), wantErr: `spec.volumes[0].configMap: get configmap "nope"`},
		{name: "missing key", sources: newSources(), vol: cmVol("app", []corev1.KeyToPath{{Key: "nokey", Path: "x"}}, nil), wantErr: "spec.volumes[0].configMap.items[0]: configmap references non-existent key: nokey"},
		{name: "escaping item path", sources: newSources(), vol: cmVol("app", []corev1.KeyToPath{{Key: "mode", Path: "../x"}}, nil), wantErr: "must not start with '..'"},
		{name: "inner dotdot item path", sources: newSources(), vol: cmVol("app", []corev1.KeyToPath{{Key: "mode", Path: "a/../../x"}}, nil), wantErr: "must not contain '..'"},
		{name: "absolute item path", sources: newSources(), vol: cmVol("app", []corev1.KeyToPath{{Key: "mode", Path: "/etc/x"}}, nil), wantErr: "must be relative path"},
		{
			name: "escaping service account token path", sources: newSources(),
			vol: corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}},
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "../token"}},
			}}}},
			wantErr: "spec.volumes[0].projected.sources[1].serviceAccountToken.path: invalid path \"../token\": must not start with '..'",
		},
		{
			name: "bad fieldPath",
			vol: corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "ip", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}},
			}}}},
			wantErr: `spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: unsupported fieldPath "status.podIP"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.sources != nil {
				opts = append(opts, WithSources(tc.sources))
			}
			pd := podDir(t)
			_, err := NewManager(nil, opts...).Setup(t.Context(), pd, testPod(tc.vol))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
			}
			if entries, _ := os.ReadDir(filepath.Join(pd, "volumes", PluginConfigMap)); len(entries) != 0 {
				t.Errorf("left behind: %v", entries)
			}
		})
	}
}

func TestSecretDownwardProjected(t *testing.T) {
	testutil.RequiresRoot(t) // tmpfs
	m := NewManager(nil, WithSources(newSources()))
	pd := podDir(t)
	pod := testPod(
		corev1.Volume{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "creds", DefaultMode: ptr(int32(0o400))}}},
		corev1.Volume{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			{Path: "ns", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}},
			{Path: "uid", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}},
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
			{Path: "tier", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}},
			{Path: "cpu_limit", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.cpu", Divisor: resource.MustParse("1m")}},
			{Path: "cpu_limit_cores", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.cpu"}},
			{Path: "mem_request", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "requests.memory", Divisor: resource.MustParse("1Mi")}},
			{Path: "mem_limit", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory"}},
		}}}},
		corev1.Volume{Name: "all-in-one", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr(int32(0o440)),
			Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "app"},
					Items: []corev1.KeyToPath{{Key: "mode", Path: "config/mode"}}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"},
					Items: []corev1.KeyToPath{{Key: "user", Path: "secret/user", Mode: ptr(int32(0o400))}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "podname", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr(true)}},
			}}}},
	)
	pod.Labels = map[string]string{"tier": "web", "app": "shop"}
	pod.Annotations = map[string]string{"note": `say "hi"`}
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("100Mi")},
	}
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr(int64(3456))}
	prep, err := m.Setup(t.Context(), pd, pod)
	if err != nil {
		t.Fatal(err)
	}

	creds := prep.Paths["creds"]
	if n := len(tmpfsAt(t, creds)); n != 1 {
		t.Errorf("secret volume on %d tmpfs mounts, want 1", n)
	}
	if readVol(t, creds, "password") != "hunter2" || readVol(t, creds, "user") != "admin" {
		t.Errorf("secret contents wrong")
	}
	// defaultMode 0400, plus 0440 from fsGroup as the kubelet does.
	if mo := modeOf(t, filepath.Join(creds, "password")); mo != 0o440 {
		t.Errorf("secret file mode %v", mo)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(creds, "password"), &st); err != nil || st.Gid != 3456 {
		t.Errorf("secret file gid %d %v, want 3456", st.Gid, err)
	}

	info := prep.Paths["info"]
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"name":            "web",
		"ns":              "ns1",
		"uid":             "uid-1",
		"labels":          "app=\"shop\"\ntier=\"web\"",
		"annotations":     `note="say \"hi\""`,
		"tier":            "web",
		"cpu_limit":       "250",
		"cpu_limit_cores": "1",
		"mem_request":     "100",
		"mem_limit":       strconv.FormatInt(int64(si.Totalram)*int64(si.Unit), 10),
	} {
		if got := readVol(t, info, p); got != want {
			t.Errorf("downwardAPI %s = %q, want %q", p, got, want)
		}
	}

	proj := prep.Paths["all-in-one"]
	if want := filepath.Join(pd, "volumes", PluginProjected, "all-in-one"); proj != want {
		t.Errorf("projected path %s", proj)
	}
	for p, want := range map[string]string{"config/mode": "prod", "secret/user": "admin", "podname": "web"} {
		if got := readVol(t, proj, p); got != want {
			t.Errorf("projected %s = %q, want %q", p, got, want)
		}
	}
	if mo := modeOf(t, filepath.Join(proj, "config/mode")); mo != 0o440 {
		t.Errorf("projected defaultMode: %v", mo)
	}

	if err := m.Teardown(t.Context(), pd, pod); err != nil {
		t.Fatal(err)
	}
	real, _ := realPath(pd)
	if left, _ := mountsUnder(real); len(left) != 0 {
		t.Errorf("mounts left: %v", left)
	}
	if _, err := os.Stat(filepath.Join(pd, "volumes")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("volumes left: %v", err)
	}
}

func TestValidatePayloadPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"a": true, "a/b/c": true, "a..b": true, ".hidden": true,
		"": false, "/abs": false, "..data": false, "..": false, "a/../b": false,
		strings.Repeat("x", 256): false, strings.Repeat("x/", 2049): false,
	} {
		if err := validatePayloadPath(p); (err == nil) != ok {
			t.Errorf("validatePayloadPath(%.20q) = %v, want ok=%v", p, err, ok)
		}
	}
}

// TestDownwardAPILimitsFromAllocatable: a resourceFieldRef to a limit the
// container does not set reads the node's allocatable, divisor honoured,
// as the kubelet's MergeContainerResourceLimits does. Pure.
func TestDownwardAPILimitsFromAllocatable(t *testing.T) {
	pod := testPod()
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3"), corev1.ResourceMemory: resource.MustParse("2Gi")}
	ref := func(path, res, divisor string) corev1.DownwardAPIVolumeFile {
		sel := &corev1.ResourceFieldSelector{ContainerName: "c", Resource: res}
		if divisor != "" {
			sel.Divisor = resource.MustParse(divisor)
		}
		return corev1.DownwardAPIVolumeFile{Path: path, ResourceFieldRef: sel}
	}
	payload := map[string]fileProjection{}
	err := downwardAPIPayload(pod, []corev1.DownwardAPIVolumeFile{
		ref("cpu", "limits.cpu", ""), ref("cpu_m", "limits.cpu", "1m"),
		ref("mem", "limits.memory", "1Mi"), ref("cpu_req", "requests.cpu", ""),
	}, 0o644, "spec.volumes[0].downwardAPI", alloc, payload)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"cpu": "3", "cpu_m": "3000", "mem": "64", "cpu_req": "0"} {
		if got := string(payload[p].data); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	err = downwardAPIPayload(pod, []corev1.DownwardAPIVolumeFile{ref("cpu", "limits.cpu", "")}, 0o644, "spec.volumes[0].downwardAPI", nil, map[string]fileProjection{})
	if err == nil || !strings.Contains(err.Error(), "spec.volumes[0].downwardAPI.items[0].resourceFieldRef: cpu has no limit and the node's allocatable cpu is unknown") {
		t.Errorf("without allocatable: %v", err)
	}
}
