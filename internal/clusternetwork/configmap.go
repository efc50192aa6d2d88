package clusternetwork

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// ConfigMap returns the ConfigMap that publishes s.
func (s Settings) ConfigMap() *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ConfigMapName,
			Namespace: ConfigMapNamespace,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "peapod"},
		},
		Data: s.Data(),
	}
}

// Ensure publishes s in the cluster's ConfigMap, or, when the cluster
// already has one, checks that s does not change it (see CheckUnchanged).
// extra are keys of other parts riding along for every node (the cluster
// DNS address and domain): unlike the network settings they may change
// from one start to the next, so they are written as given. s must be
// valid. It is what a starting server calls once its API serves, before
// any controller or node runs.
func Ensure(ctx context.Context, client kubernetes.Interface, s Settings, extra map[string]string) error {
	cms := client.CoreV1().ConfigMaps(ConfigMapNamespace)
	for {
		cm, err := cms.Get(ctx, ConfigMapName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			want := s.ConfigMap()
			for k, v := range extra {
				want.Data[k] = v
			}
			_, err = cms.Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue // another server published first: check against it
			}
			if err != nil {
				return fmt.Errorf("publish cluster network settings in ConfigMap %s/%s: %w", ConfigMapNamespace, ConfigMapName, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read cluster network settings from ConfigMap %s/%s: %w", ConfigMapNamespace, ConfigMapName, err)
		}
		stored, err := FromData(cm.Data)
		if err != nil {
			return err
		}
		if err := s.CheckUnchanged(stored); err != nil {
			return err
		}
		changed := false
		for k, v := range extra {
			if cm.Data[k] != v {
				cm.Data[k], changed = v, true
			}
		}
		if !changed {
			return nil
		}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue // another server wrote meanwhile: check against it
		}
		if err != nil {
			return fmt.Errorf("update ConfigMap %s/%s: %w", ConfigMapNamespace, ConfigMapName, err)
		}
		return nil
	}
}

// Read returns the cluster's settings from its ConfigMap, and the
// ConfigMap's whole data for the keys other parts publish there (see
// Ensure), waiting with a watch (and saying so in log) until the ConfigMap
// exists. It needs only get, list and watch of that one ConfigMap, which
// the node authorizer gives every node. It returns when ctx ends.
func Read(ctx context.Context, client kubernetes.Interface, log *slog.Logger) (Settings, map[string]string, error) {
	cms := client.CoreV1().ConfigMaps(ConfigMapNamespace)
	cm, err := cms.Get(ctx, ConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		log.Info("waiting for the server to publish the cluster network settings", "configmap", ConfigMapNamespace+"/"+ConfigMapName)
		cm, err = waitForConfigMap(ctx, client)
	}
	if err != nil {
		return Settings{}, nil, fmt.Errorf("read cluster network settings from ConfigMap %s/%s: %w", ConfigMapNamespace, ConfigMapName, err)
	}
	settings, err := FromData(cm.Data)
	return settings, cm.Data, err
}

func waitForConfigMap(ctx context.Context, client kubernetes.Interface) (*corev1.ConfigMap, error) {
	selector := fields.OneTermEqualSelector("metadata.name", ConfigMapName).String()
	cms := client.CoreV1().ConfigMaps(ConfigMapNamespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return cms.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return cms.Watch(ctx, o)
		},
	}
	// A ConfigMap created before the watch began sends no event: what the
	// list found decides first.
	var found *corev1.ConfigMap
	precondition := func(store cache.Store) (bool, error) {
		obj, exists, err := store.GetByKey(ConfigMapNamespace + "/" + ConfigMapName)
		if err != nil || !exists {
			return false, err
		}
		found = obj.(*corev1.ConfigMap)
		return true, nil
	}
	// The wrapper tells the reflector whether client can stream a
	// watch-list (a fake clientset cannot).
	ev, err := watchtools.UntilWithSync(ctx, cache.ToListWatcherWithWatchListSemantics(lw, client), &corev1.ConfigMap{}, precondition,
		func(ev watch.Event) (bool, error) {
			_, ok := ev.Object.(*corev1.ConfigMap)
			return ok && (ev.Type == watch.Added || ev.Type == watch.Modified), nil
		})
	if err != nil {
		return nil, err
	}
	if ev == nil {
		return found, nil
	}
	return ev.Object.(*corev1.ConfigMap), nil
}
