package apiserver

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// systemNamespaces exist on every cluster.
var systemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// seedNamespace gives a new namespace its default ServiceAccount and the
// kube-root-ca.crt ConfigMap, as the Kubernetes controllers do. Existing
// objects are left alone, so it is idempotent.
func seedNamespace(ctx context.Context, a *api, obj runtime.Object) error {
	ns := metaOf(obj).GetName()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: ns,
		Annotations: map[string]string{"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
		Data: map[string]string{"ca.crt": string(a.caPEM)}}
	var errs []error
	for _, o := range []struct {
		resource string
		obj      runtime.Object
	}{{"serviceaccounts", sa}, {"configmaps", cm}} {
		if _, err := a.create(ctx, a.resourceFor("", "v1", o.resource), ns, o.obj, false); err != nil && !apierrors.IsAlreadyExists(err) {
			errs = append(errs, fmt.Errorf("seed %s in namespace %s: %w", o.resource, ns, err))
		}
	}
	return errors.Join(errs...)
}

// bootstrap creates the system namespaces (and reseeds them); it is run
// at every start and is idempotent.
func (a *api) bootstrap(ctx context.Context) error {
	res := a.resourceFor("", "v1", "namespaces")
	for _, name := range systemNamespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		_, err := a.create(ctx, res, "", ns, false)
		if apierrors.IsAlreadyExists(err) {
			err = seedNamespace(ctx, a, ns)
		}
		if err != nil {
			return fmt.Errorf("bootstrap namespace %s: %w", name, err)
		}
	}
	return a.bootstrapExtended(ctx)
}
