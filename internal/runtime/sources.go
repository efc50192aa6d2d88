package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/peapod/peapod/internal/runtime/spec"
	"github.com/peapod/peapod/internal/volume"
)

// Option configures a Runtime beyond its node configuration.
type Option func(*Runtime)

// WithSources gives the runtime where ConfigMaps, Secrets and service
// account tokens come from (the API, through the agent), for volumes and
// env. Without it, pods that use them fail with an error naming the field.
func WithSources(s volume.Sources) Option {
	return func(r *Runtime) { r.sources = s }
}

// ServiceEnvFunc returns the Service environment variables of a pod's
// containers (see spec.ServiceEnv); an error (the node has not read the
// Services yet) fails the container's creation, which is retried.
type ServiceEnvFunc func(ctx context.Context, pod *corev1.Pod) (map[string]string, error)

// WithServiceEnv gives the runtime the Service environment variables of
// pods, as the kubelet sets them from its Service informer. Without it,
// containers get none.
func WithServiceEnv(f ServiceEnvFunc) Option {
	return func(r *Runtime) { r.serviceEnv = f }
}

// lookup resolves env valueFrom/envFrom references of a pod in namespace.
func (r *Runtime) lookup(ctx context.Context, namespace string) spec.LookupFunc {
	if r.sources == nil {
		return nil
	}
	return func(kind spec.RefKind, name string) (map[string]string, bool, error) {
		switch kind {
		case spec.KindConfigMap:
			cm, err := r.sources.ConfigMap(ctx, namespace, name)
			if isNotFound(err) {
				return nil, false, nil
			}
			if err != nil {
				return nil, false, fmt.Errorf("configmap %s/%s: %w", namespace, name, err)
			}
			data := map[string]string{}
			for k, v := range cm.Data {
				data[k] = v
			}
			for k, v := range cm.BinaryData {
				data[k] = string(v)
			}
			return data, true, nil
		case spec.KindSecret:
			s, err := r.sources.Secret(ctx, namespace, name)
			if isNotFound(err) {
				return nil, false, nil
			}
			if err != nil {
				return nil, false, fmt.Errorf("secret %s/%s: %w", namespace, name, err)
			}
			data := map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
			for k, v := range s.StringData {
				data[k] = v
			}
			return data, true, nil
		default:
			return nil, false, fmt.Errorf("unknown reference kind %q", kind)
		}
	}
}

func isNotFound(err error) bool {
	return errors.Is(err, volume.ErrNotFound) || apierrors.IsNotFound(err)
}

// RefreshVolumes brings the sandbox's configMap, secret, downwardAPI and
// projected volumes up to date (and rotates service account tokens), as
// the kubelet does periodically. current is the pod as the API has it
// now: its labels and annotations, which the downward API shows and which
// may have changed since the sandbox was made, are taken into the
// sandbox's record too, so containers started later see them in their
// env as well (the kubelet builds env from the pod it has at each start).
// A nil current refreshes from the record alone.
func (r *Runtime) RefreshVolumes(ctx context.Context, sandboxID string, current *corev1.Pod) error {
	unlock := r.lockSandbox(sandboxID)
	defer unlock()
	sb, err := r.loadSandbox(sandboxID)
	if err != nil {
		return err
	}
	if !sb.Ready || sb.Pod == nil {
		return nil
	}
	if current != nil && current.UID == sb.Pod.UID && !metadataEqual(current, sb.Pod) {
		sb.Pod.Labels, sb.Pod.Annotations = maps.Clone(current.Labels), maps.Clone(current.Annotations)
		if err := r.saveSandbox(sb); err != nil {
			return err
		}
	}
	return r.volumes.Refresh(ctx, r.sandboxDir(sandboxID), sb.Pod)
}

// metadataEqual reports whether two versions of a pod have the same
// labels and annotations (nil and empty alike).
func metadataEqual(a, b *corev1.Pod) bool {
	return maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations)
}
