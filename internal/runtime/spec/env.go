package spec

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// defaultPath is the PATH a container gets when its image sets none
// (containerd's default).
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Env returns the container's environment as KEY=value strings, in the order
// containerd builds it: a default PATH, HOSTNAME, the image's env, then the
// container's envFrom and env (kubelet's rules: later entries override
// earlier ones with the same name, keeping the first one's position; values
// expand $(VAR) references to earlier container env vars; envFrom keys are
// added in sorted order, prefixed, and skipped when not valid env var names).
// The image's env is not visible to $(VAR) expansion, as in Kubernetes.
func Env(in Input) ([]string, error) {
	path, err := containerPath(in)
	if err != nil {
		return nil, err
	}
	kenv, err := kubeletEnv(in, path)
	if err != nil {
		return nil, err
	}
	return runtimeEnv(in, kenv), nil
}

// envList is an ordered list of env vars with unique names.
type envList struct {
	names []string
	vals  map[string]string
}

func (l *envList) set(name, val string) {
	if l.vals == nil {
		l.vals = map[string]string{}
	}
	if _, ok := l.vals[name]; !ok {
		l.names = append(l.names, name)
	}
	l.vals[name] = val
}

func (l *envList) toMap() map[string]string {
	m := make(map[string]string, len(l.names))
	for _, n := range l.names {
		m[n] = l.vals[n]
	}
	return m
}

// runtimeEnv merges the default PATH, HOSTNAME, the image env and the
// kubelet's env, later values overriding earlier ones in place.
func runtimeEnv(in Input, kenv envList) []string {
	var all envList
	for _, kv := range append([]string{defaultPath, "HOSTNAME=" + in.Hostname}, in.Image.Env...) {
		name, val, _ := strings.Cut(kv, "=")
		if name != "" {
			all.set(name, val)
		}
	}
	for _, n := range kenv.names {
		all.set(n, kenv.vals[n])
	}
	out := make([]string, 0, len(all.names))
	for _, n := range all.names {
		out = append(out, n+"="+all.vals[n])
	}
	return out
}

// kubeletEnv computes the container's env vars the way the kubelet's
// makeEnvironmentVariables does: envFrom first, then env in order, then
// the Service variables the container does not set itself.
func kubeletEnv(in Input, path string) (envList, error) {
	c := in.Container
	var env envList
	// $(VAR) sees the container's variables set so far, then the
	// Services'.
	vars := make(map[string]string, len(in.ServiceEnv))
	for k, v := range in.ServiceEnv {
		vars[k] = v
	}
	set := func(name, val string) {
		env.set(name, val)
		vars[name] = val
	}
	for i, ef := range c.EnvFrom {
		fp := fmt.Sprintf("%s.envFrom[%d]", path, i)
		var (
			kind     RefKind
			name     string
			optional *bool
		)
		switch {
		case ef.ConfigMapRef != nil:
			kind, name, optional = KindConfigMap, ef.ConfigMapRef.Name, ef.ConfigMapRef.Optional
			fp += ".configMapRef"
		case ef.SecretRef != nil:
			kind, name, optional = KindSecret, ef.SecretRef.Name, ef.SecretRef.Optional
			fp += ".secretRef"
		default:
			return env, fmt.Errorf("%s: no source: %w", fp, ErrInvalid)
		}
		data, found, err := lookup(in, kind, name, fp)
		if err != nil {
			return env, err
		}
		if !found {
			if optional != nil && *optional {
				continue
			}
			return env, fmt.Errorf("%s: %s %q not found: %w", fp, kind, name, ErrInvalid)
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			n := ef.Prefix + k
			if len(validation.IsEnvVarName(n)) != 0 {
				continue // the kubelet skips these and records an event
			}
			set(n, data[k])
		}
	}
	for i, e := range c.Env {
		fp := fmt.Sprintf("%s.env[%d]", path, i)
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vars))
			continue
		}
		val, ok, err := valueFrom(in, e.ValueFrom, fp+".valueFrom")
		if err != nil {
			return env, err
		}
		if ok {
			set(e.Name, val)
		}
	}
	names := make([]string, 0, len(in.ServiceEnv))
	for k := range in.ServiceEnv {
		if _, own := env.vals[k]; !own {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		env.set(k, in.ServiceEnv[k])
	}
	return env, nil
}

// valueFrom resolves one env var source. ok is false for an optional
// reference to a missing object or key: the var is then left out.
func valueFrom(in Input, src *corev1.EnvVarSource, fp string) (string, bool, error) {
	switch {
	case src.FieldRef != nil:
		v, err := fieldRefValue(in, src.FieldRef, fp+".fieldRef")
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := resourceFieldRefValue(in, src.ResourceFieldRef, fp+".resourceFieldRef")
		return v, err == nil, err
	case src.ConfigMapKeyRef != nil:
		r := src.ConfigMapKeyRef
		return keyRef(in, KindConfigMap, r.Name, r.Key, r.Optional, fp+".configMapKeyRef")
	case src.SecretKeyRef != nil:
		r := src.SecretKeyRef
		return keyRef(in, KindSecret, r.Name, r.Key, r.Optional, fp+".secretKeyRef")
	case src.FileKeyRef != nil:
		return "", false, fmt.Errorf("%s.fileKeyRef: %w", fp, ErrUnsupported)
	}
	return "", false, fmt.Errorf("%s: no source: %w", fp, ErrInvalid)
}

func lookup(in Input, kind RefKind, name, fp string) (map[string]string, bool, error) {
	if in.Lookup == nil {
		return nil, false, fmt.Errorf("%s: %w", fp, ErrUnsupported)
	}
	data, found, err := in.Lookup(kind, name)
	if err != nil {
		return nil, false, fmt.Errorf("%s: look up %s %q: %w", fp, kind, name, err)
	}
	return data, found, nil
}

func keyRef(in Input, kind RefKind, name, key string, optional *bool, fp string) (string, bool, error) {
	data, found, err := lookup(in, kind, name, fp)
	if err != nil {
		return "", false, err
	}
	opt := optional != nil && *optional
	if !found {
		if opt {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%s: %s %q not found: %w", fp, kind, name, ErrInvalid)
	}
	v, ok := data[key]
	if !ok {
		if opt {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%s: couldn't find key %s in %s %s/%s: %w",
			fp, key, kind, in.Pod.Namespace, name, ErrInvalid)
	}
	return v, true, nil
}

// fieldRefValue implements the downward API paths allowed in env vars.
func fieldRefValue(in Input, ref *corev1.ObjectFieldSelector, fp string) (string, error) {
	pod := in.Pod
	if ref.APIVersion != "" && ref.APIVersion != "v1" {
		return "", fmt.Errorf("%s: apiVersion %q: %w", fp, ref.APIVersion, ErrUnsupported)
	}
	switch p := ref.FieldPath; p {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		if in.NodeName != "" {
			return in.NodeName, nil
		}
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		if in.PodIP == "" && len(in.PodIPs) > 0 {
			return in.PodIPs[0], nil
		}
		return in.PodIP, nil
	case "status.podIPs":
		if len(in.PodIPs) > 0 {
			return strings.Join(in.PodIPs, ","), nil
		}
		return in.PodIP, nil
	case "status.hostIP":
		if in.HostIP == "" && len(in.HostIPs) > 0 {
			return in.HostIPs[0], nil
		}
		return in.HostIP, nil
	case "status.hostIPs":
		if len(in.HostIPs) > 0 {
			return strings.Join(in.HostIPs, ","), nil
		}
		return in.HostIP, nil
	default:
		if k, ok := subscript(p, "metadata.labels"); ok {
			return pod.Labels[k], nil
		}
		if k, ok := subscript(p, "metadata.annotations"); ok {
			return pod.Annotations[k], nil
		}
		return "", fmt.Errorf("%s: fieldPath %q: %w", fp, p, ErrUnsupported)
	}
}

// subscript parses "prefix['key']" and returns key.
func subscript(p, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(p, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

// resourceFieldRefValue implements resourceFieldRef for cpu, memory and
// ephemeral-storage limits and requests. An unset limit reads as the
// node's allocatable, as in the kubelet; cpu rounds up to whole divisors
// of millicores, memory and storage to whole divisors of bytes.
func resourceFieldRefValue(in Input, ref *corev1.ResourceFieldSelector, fp string) (string, error) {
	c := in.Container
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		c = findContainer(in.Pod, ref.ContainerName)
		if c == nil {
			return "", fmt.Errorf("%s: container %q not in pod: %w", fp, ref.ContainerName, ErrInvalid)
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	kind, name, _ := strings.Cut(ref.Resource, ".")
	if name != "cpu" && name != "memory" && name != "ephemeral-storage" {
		return "", fmt.Errorf("%s: resource %q: %w", fp, ref.Resource, ErrUnsupported)
	}
	rn := corev1.ResourceName(name)
	var q resource.Quantity
	switch kind {
	case "limits":
		l, ok := c.Resources.Limits[rn]
		if !ok && in.Pod.Spec.Resources != nil {
			// The kubelet's defaultPodLimitsForDownwardAPI: a pod-level
			// limit bounds a container without its own.
			l, ok = in.Pod.Spec.Resources.Limits[rn]
		}
		if !ok {
			if l, ok = in.NodeAllocatable[rn]; !ok {
				return "", fmt.Errorf("%s: %s has no limit and node allocatable is unknown: %w", fp, name, ErrInvalid)
			}
		}
		q = l
	case "requests":
		q = c.Resources.Requests[rn]
	default:
		return "", fmt.Errorf("%s: resource %q: %w", fp, ref.Resource, ErrUnsupported)
	}
	var v float64
	if name == "cpu" {
		v = math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue()))
	} else {
		v = math.Ceil(float64(q.Value()) / float64(divisor.Value()))
	}
	return strconv.FormatInt(int64(v), 10), nil
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
