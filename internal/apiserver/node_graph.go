package apiserver

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

// apiGraph answers NodeGraph questions from storage, through the API's
// own decoding. Lookups read etcd directly, so decisions never lag a write.
type apiGraph struct {
	a *api

	// referrer remembers, per question NodeReferences answered yes, the pod
	// that made it so. Asking again reads that one pod instead of scanning
	// the namespace's pods: every pod's kube-root-ca.crt read would
	// otherwise decode every pod of its namespace.
	mu       sync.Mutex
	referrer map[nodeRef]string
}

type nodeRef struct{ node, resource, namespace, name string }

func newAPIGraph(a *api) *apiGraph { return &apiGraph{a: a, referrer: map[nodeRef]string{}} }

var _ NodeGraph = (*apiGraph)(nil)

// PodNodeName implements NodeGraph.
func (g *apiGraph) PodNodeName(ctx context.Context, namespace, name string) (string, bool, error) {
	pod, err := g.pod(ctx, namespace, name)
	if apierrors.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return pod.Spec.NodeName, true, nil
}

func (g *apiGraph) pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	res := g.a.resourceFor("", "v1", "pods")
	obj, _, err := g.a.getObject(ctx, res, namespace, name)
	if err != nil {
		return nil, err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("stored pod %s/%s is a %T", namespace, name, obj)
	}
	return pod, nil
}

// NodeReferences implements NodeGraph: the pod that answered last time if
// it still does, else a scan of the namespace's pods bound to node.
func (g *apiGraph) NodeReferences(ctx context.Context, node, resource, namespace, name string) (bool, error) {
	key := nodeRef{node, resource, namespace, name}
	g.mu.Lock()
	last, ok := g.referrer[key]
	g.mu.Unlock()
	if ok {
		if pod, err := g.pod(ctx, namespace, last); err == nil && pod.Spec.NodeName == node && podReferences(pod, resource, name) {
			return true, nil
		}
	}
	found, err := g.scan(ctx, key)
	g.mu.Lock()
	defer g.mu.Unlock()
	if found != "" {
		g.referrer[key] = found
	} else {
		delete(g.referrer, key)
	}
	return found != "", err
}

// scan returns a pod bound to the node that references the object, or "".
func (g *apiGraph) scan(ctx context.Context, key nodeRef) (string, error) {
	res := g.a.resourceFor("", "v1", "pods")
	sel := selector{labels: labels.Everything(), fields: fields.OneTermEqualSelector("spec.nodeName", key.node)}
	cont := ""
	for {
		lr, err := g.a.listObjects(ctx, res, key.namespace, sel, 500, cont, "", "")
		if err != nil {
			return "", err
		}
		for _, obj := range lr.items {
			if pod, ok := obj.(*corev1.Pod); ok && podReferences(pod, key.resource, key.name) {
				return pod.Name, nil
			}
		}
		if lr.cont == "" {
			return "", nil
		}
		cont = lr.cont
	}
}

// podReferences reports whether pod uses configmap or secret name.
func podReferences(pod *corev1.Pod, resource, name string) bool {
	found := false
	visit := func(kind, n string) {
		if kind == resource && n == name {
			found = true
		}
	}
	if resource == "secrets" {
		for _, s := range pod.Spec.ImagePullSecrets {
			visit("secrets", s.Name)
		}
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			visit("persistentvolumeclaims", v.PersistentVolumeClaim.ClaimName)
		case v.ConfigMap != nil:
			visit("configmaps", v.ConfigMap.Name)
		case v.Secret != nil:
			visit("secrets", v.Secret.SecretName)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					visit("configmaps", s.ConfigMap.Name)
				}
				if s.Secret != nil {
					visit("secrets", s.Secret.Name)
				}
			}
		}
	}
	var containers []corev1.Container
	containers = append(containers, pod.Spec.InitContainers...)
	containers = append(containers, pod.Spec.Containers...)
	for _, e := range pod.Spec.EphemeralContainers {
		containers = append(containers, corev1.Container(e.EphemeralContainerCommon))
	}
	for _, c := range containers {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				visit("configmaps", e.ConfigMapRef.Name)
			}
			if e.SecretRef != nil {
				visit("secrets", e.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if e.ValueFrom.ConfigMapKeyRef != nil {
				visit("configmaps", e.ValueFrom.ConfigMapKeyRef.Name)
			}
			if e.ValueFrom.SecretKeyRef != nil {
				visit("secrets", e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	return found
}

// VolumeOnNode implements NodeGraph: a missing volume is not on the node.
func (g *apiGraph) VolumeOnNode(ctx context.Context, node, name string) (bool, error) {
	res := g.a.resourceFor("", "v1", "persistentvolumes")
	obj, _, err := g.a.getObject(ctx, res, "", name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	pv, ok := obj.(*corev1.PersistentVolume)
	if !ok {
		return false, fmt.Errorf("stored persistentvolume %s is a %T", name, obj)
	}
	return PinnedNode(pv) == node, nil
}

// PinnedNode returns the one node a PersistentVolume's required node
// affinity allows (a single term, kubernetes.io/hostname In [node]), as
// the local-path provisioner writes it, or "". Pure.
func PinnedNode(pv *corev1.PersistentVolume) string {
	na := pv.Spec.NodeAffinity
	if na == nil || na.Required == nil || len(na.Required.NodeSelectorTerms) != 1 {
		return ""
	}
	t := na.Required.NodeSelectorTerms[0]
	if len(t.MatchExpressions) != 1 || len(t.MatchFields) != 0 {
		return ""
	}
	e := t.MatchExpressions[0]
	if e.Key != corev1.LabelHostname || e.Operator != corev1.NodeSelectorOpIn || len(e.Values) != 1 {
		return ""
	}
	return e.Values[0]
}
