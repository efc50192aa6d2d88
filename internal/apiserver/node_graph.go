package apiserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

// apiGraph answers NodeGraph questions from storage, through the API's
// own decoding. Lookups read etcd directly, so decisions never lag a write.
type apiGraph struct{ a *api }

var _ NodeGraph = apiGraph{}

// PodNodeName implements NodeGraph.
func (g apiGraph) PodNodeName(ctx context.Context, namespace, name string) (string, bool, error) {
	res := g.a.resourceFor("", "v1", "pods")
	obj, _, err := g.a.getObject(ctx, res, namespace, name)
	if apierrors.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return "", false, fmt.Errorf("stored pod %s/%s is a %T", namespace, name, obj)
	}
	return pod.Spec.NodeName, true, nil
}

// NodeReferences implements NodeGraph by scanning the namespace's pods
// bound to node.
func (g apiGraph) NodeReferences(ctx context.Context, node, resource, namespace, name string) (bool, error) {
	res := g.a.resourceFor("", "v1", "pods")
	sel := selector{labels: labels.Everything(), fields: fields.OneTermEqualSelector("spec.nodeName", node)}
	cont := ""
	for {
		lr, err := g.a.listObjects(ctx, res, namespace, sel, 500, cont, "", "")
		if err != nil {
			return false, err
		}
		for _, obj := range lr.items {
			if pod, ok := obj.(*corev1.Pod); ok && podReferences(pod, resource, name) {
				return true, nil
			}
		}
		if lr.cont == "" {
			return false, nil
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
