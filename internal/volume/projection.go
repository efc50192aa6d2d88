package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
)

// defaultProjectionMode is the default file mode of configMap, secret,
// downwardAPI and projected volumes (corev1.*VolumeSourceDefaultMode).
const defaultProjectionMode int32 = 0o644

// setupProjection builds the payload of a configMap, secret, downwardAPI or
// projected volume, then writes it the kubelet's atomic way into
// podDir/volumes/<plugin>/<name>. As the kubelet does, configMap volumes sit
// on disk and the others on a tmpfs (secrets never touch the disk). Calling
// it again refreshes the contents (new ..data swapped in).
func (m *Manager) setupProjection(ctx context.Context, podDir string, pod *corev1.Pod, v *corev1.Volume, fld string, undo *undoStack) (string, error) {
	var (
		plugin  string
		memory  = true
		payload map[string]fileProjection
		err     error
	)
	switch {
	case v.ConfigMap != nil:
		plugin, memory = PluginConfigMap, false
		payload = map[string]fileProjection{}
		err = m.configMapPayload(ctx, pod, v.ConfigMap, modeOr(v.ConfigMap.DefaultMode), fld+".configMap", payload)
	case v.Secret != nil:
		plugin = PluginSecret
		payload = map[string]fileProjection{}
		err = m.secretPayload(ctx, pod, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, modeOr(v.Secret.DefaultMode), fld+".secret", payload)
	case v.DownwardAPI != nil:
		plugin = PluginDownwardAPI
		payload = map[string]fileProjection{}
		err = downwardAPIPayload(pod, v.DownwardAPI.Items, modeOr(v.DownwardAPI.DefaultMode), fld+".downwardAPI", m.allocatable(), payload)
	case v.Projected != nil:
		plugin = PluginProjected
		payload, err = m.projectedPayload(ctx, pod, v.Projected, filepath.Join(podDir, "volumes", plugin, v.Name), fld+".projected")
	default:
		return "", unsupported(v, fld)
	}
	if err != nil {
		return "", err
	}
	dir, err := makeVolumeDir(podDir, plugin, v.Name, emptyDirPerm, undo)
	if err != nil {
		return "", err
	}
	if memory {
		if err := mountTmpfs(dir, 0, undo); err != nil {
			return "", err
		}
	}
	if payloadCurrent(dir, payload, pod) {
		return dir, nil
	}
	if err := writeAtomic(dir, payload); err != nil {
		return "", fmt.Errorf("write %s volume: %w", plugin, err)
	}
	if err := applyFSGroupReadOnly(dir, pod); err != nil {
		return "", err
	}
	return dir, nil
}

func modeOr(m *int32) int32 {
	if m != nil {
		return *m
	}
	return defaultProjectionMode
}

func isNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || apierrors.IsNotFound(err)
}

// keyPayload adds the keys of one object to payload: every key with
// defaultMode without items, else only the listed ones (a missing key is an
// error unless optional).
func keyPayload(kind string, data map[string][]byte, items []corev1.KeyToPath, optional bool, defaultMode int32, fld string, payload map[string]fileProjection) error {
	if len(items) == 0 {
		for k, d := range data {
			payload[k] = fileProjection{data: d, mode: defaultMode}
		}
		return nil
	}
	for i, it := range items {
		d, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("%s.items[%d]: %s references non-existent key: %s", fld, i, kind, it.Key)
		}
		mode := defaultMode
		if it.Mode != nil {
			mode = *it.Mode
		}
		payload[it.Path] = fileProjection{data: d, mode: mode}
	}
	return nil
}

func (m *Manager) configMapPayload(ctx context.Context, pod *corev1.Pod, src *corev1.ConfigMapVolumeSource, defaultMode int32, fld string, payload map[string]fileProjection) error {
	return m.configMapProjection(ctx, pod, src.Name, src.Items, src.Optional, defaultMode, fld, payload)
}

func (m *Manager) configMapProjection(ctx context.Context, pod *corev1.Pod, name string, items []corev1.KeyToPath, optionalPtr *bool, defaultMode int32, fld string, payload map[string]fileProjection) error {
	optional := optionalPtr != nil && *optionalPtr
	if m.sources == nil {
		return fmt.Errorf("%s: not supported yet: no ConfigMap source configured", fld)
	}
	cm, err := m.sources.ConfigMap(ctx, pod.Namespace, name)
	if err != nil {
		if isNotFound(err) && optional {
			return nil
		}
		return fmt.Errorf("%s: get configmap %q: %w", fld, name, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyPayload("configmap", data, items, optional, defaultMode, fld, payload)
}

func (m *Manager) secretPayload(ctx context.Context, pod *corev1.Pod, name string, items []corev1.KeyToPath, optionalPtr *bool, defaultMode int32, fld string, payload map[string]fileProjection) error {
	optional := optionalPtr != nil && *optionalPtr
	if m.sources == nil {
		return fmt.Errorf("%s: not supported yet: no Secret source configured", fld)
	}
	s, err := m.sources.Secret(ctx, pod.Namespace, name)
	if err != nil {
		if isNotFound(err) && optional {
			return nil
		}
		return fmt.Errorf("%s: get secret %q: %w", fld, name, err)
	}
	data := make(map[string][]byte, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		data[k] = v
	}
	for k, v := range s.StringData { // the API server merges stringData; a local manifest may not have been
		data[k] = []byte(v)
	}
	return keyPayload("secret", data, items, optional, defaultMode, fld, payload)
}

// projectedPayload builds a projected volume's payload; dir is the
// volume's directory, where a current token may be reused from.
func (m *Manager) projectedPayload(ctx context.Context, pod *corev1.Pod, src *corev1.ProjectedVolumeSource, dir, fld string) (map[string]fileProjection, error) {
	defaultMode := modeOr(src.DefaultMode)
	payload := map[string]fileProjection{}
	for i, s := range src.Sources {
		sf := fmt.Sprintf("%s.sources[%d]", fld, i)
		var err error
		switch {
		case s.ConfigMap != nil:
			err = m.configMapProjection(ctx, pod, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, defaultMode, sf+".configMap", payload)
		case s.Secret != nil:
			err = m.secretPayload(ctx, pod, s.Secret.Name, s.Secret.Items, s.Secret.Optional, defaultMode, sf+".secret", payload)
		case s.DownwardAPI != nil:
			err = downwardAPIPayload(pod, s.DownwardAPI.Items, defaultMode, sf+".downwardAPI", m.allocatable(), payload)
		case s.ServiceAccountToken != nil:
			err = m.tokenProjection(ctx, pod, s.ServiceAccountToken, tokenMode(src, pod), dir, sf+".serviceAccountToken", payload)
		case s.ClusterTrustBundle != nil:
			err = fmt.Errorf("%s.clusterTrustBundle: not supported yet", sf)
		case s.PodCertificate != nil:
			err = fmt.Errorf("%s.podCertificate: not supported yet", sf)
		default:
			err = fmt.Errorf("%s: must specify a projection source", sf)
		}
		if err != nil {
			return nil, err
		}
	}
	return payload, nil
}

// downwardAPIPayload renders downward API items as the kubelet does:
// metadata.name/namespace/uid, metadata.labels and metadata.annotations
// (sorted `key="value"` lines) or one label/annotation by key, and container
// resource limits/requests (with divisor, rounded up; an unset limit is
// the node's allocatable, as the kubelet substitutes it).
func downwardAPIPayload(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defaultMode int32, fld string, allocatable corev1.ResourceList, payload map[string]fileProjection) error {
	for i, it := range items {
		itf := fmt.Sprintf("%s.items[%d]", fld, i)
		var (
			val string
			err error
		)
		switch {
		case it.FieldRef != nil:
			val, err = podField(pod, it.FieldRef.FieldPath)
			if err != nil {
				err = fmt.Errorf("%s.fieldRef.fieldPath: %w", itf, err)
			}
		case it.ResourceFieldRef != nil:
			val, err = containerResource(pod, it.ResourceFieldRef, allocatable)
			if err != nil {
				err = fmt.Errorf("%s.resourceFieldRef: %w", itf, err)
			}
		default:
			err = fmt.Errorf("%s: must specify fieldRef or resourceFieldRef", itf)
		}
		if err != nil {
			return err
		}
		mode := defaultMode
		if it.Mode != nil {
			mode = *it.Mode
		}
		payload[it.Path] = fileProjection{data: []byte(val), mode: mode}
	}
	return nil
}

func podField(pod *corev1.Pod, path string) (string, error) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// subscript parses `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

// formatMap is the kubelet's fieldpath.FormatMap: sorted key="value" lines.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

func containerResource(pod *corev1.Pod, ref *corev1.ResourceFieldSelector, allocatable corev1.ResourceList) (string, error) {
	var c *corev1.Container
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == ref.ContainerName {
				c = &list[i]
			}
		}
	}
	if c == nil {
		return "", fmt.Errorf("container %q not found in pod", ref.ContainerName)
	}
	kind, res, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	name := corev1.ResourceName(res)
	var q resource.Quantity
	var set bool
	if kind == "limits" {
		q, set = c.Resources.Limits[name]
		if !set && pod.Spec.Resources != nil {
			// A pod-level limit bounds a container without its own (the
			// kubelet's defaultPodLimitsForDownwardAPI).
			q, set = pod.Spec.Resources.Limits[name]
		}
	} else {
		q, set = c.Resources.Requests[name]
	}
	if !set {
		if kind == "requests" {
			q, set = c.Resources.Limits[name] // requests default to limits
		}
		if !set {
			if kind == "requests" {
				q = resource.Quantity{}
			} else if q, set = allocatable[name]; !set {
				return "", fmt.Errorf("%s has no limit and the node's allocatable %s is unknown", res, res)
			}
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	switch name {
	case corev1.ResourceCPU:
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	case corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
		return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
	}
	return "", fmt.Errorf("unsupported resource %q", ref.Resource)
}

// hostCapacity is the machine's CPUs, memory and root filesystem, the
// node allocatable of a Manager not told it (WithNodeAllocatable).
func hostCapacity() corev1.ResourceList {
	c := corev1.ResourceList{corev1.ResourceCPU: *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI)}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		c[corev1.ResourceMemory] = *resource.NewQuantity(int64(si.Totalram)*int64(si.Unit), resource.BinarySI)
	}
	var st unix.Statfs_t
	if unix.Statfs("/", &st) == nil {
		c[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(st.Blocks)*st.Bsize, resource.BinarySI)
	}
	return c
}

// applyFSGroupReadOnly is the kubelet's SetVolumeOwnership for a read-only
// volume: everything (but symlinks) group-owned by fsGroup, files gain
// 0440, directories 0550 and setgid.
func applyFSGroupReadOnly(dir string, pod *corev1.Pod) error {
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.FSGroup == nil {
		return nil
	}
	gid := int(*sc.FSGroup)
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if err := os.Lchown(p, -1, gid); err != nil {
			return fmt.Errorf("chown %s to fsGroup %d: %w", p, gid, err)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mask := os.FileMode(0o440)
		if d.IsDir() {
			mask = 0o550 | os.ModeSetgid
		}
		if err := os.Chmod(p, info.Mode()|mask); err != nil {
			return fmt.Errorf("chmod %s for fsGroup: %w", p, err)
		}
		return nil
	})
}
