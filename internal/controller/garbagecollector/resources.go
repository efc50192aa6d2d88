package garbagecollector

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ownerIndex indexes objects by the UIDs of their owners.
const ownerIndex = "gc-owner-uid"

func ownerUIDs(obj any) ([]string, error) {
	m, err := metav1Accessor(obj)
	if err != nil {
		return nil, nil
	}
	var out []string
	for _, r := range m.GetOwnerReferences() {
		out = append(out, string(r.UID))
	}
	return out, nil
}

func metav1Accessor(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T is not an object", obj)
	}
	return m, nil
}

// resource is one watched kind and how to act on its objects.
type resource struct {
	gvk        schema.GroupVersionKind
	namespaced bool
	informer   cache.SharedIndexInformer
	get        func(ctx context.Context, ns, name string) (metav1.Object, error)
	update     func(ctx context.Context, obj metav1.Object) error
	delete     func(ctx context.Context, ns, name string, opts metav1.DeleteOptions) error
	patch      func(ctx context.Context, ns, name string, pt types.PatchType, data []byte) error
}

type typedClient[T metav1.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

func newResource[T metav1.Object](gvk schema.GroupVersionKind, namespaced bool, inf cache.SharedIndexInformer, cl func(ns string) typedClient[T]) *resource {
	return &resource{
		gvk: gvk, namespaced: namespaced, informer: inf,
		get: func(ctx context.Context, ns, name string) (metav1.Object, error) {
			return cl(ns).Get(ctx, name, metav1.GetOptions{})
		},
		update: func(ctx context.Context, obj metav1.Object) error {
			_, err := cl(obj.GetNamespace()).Update(ctx, obj.(T), metav1.UpdateOptions{})
			return err
		},
		delete: func(ctx context.Context, ns, name string, opts metav1.DeleteOptions) error {
			return cl(ns).Delete(ctx, name, opts)
		},
		patch: func(ctx context.Context, ns, name string, pt types.PatchType, data []byte) error {
			_, err := cl(ns).Patch(ctx, name, pt, data, metav1.PatchOptions{})
			return err
		},
	}
}

// resources lists the kinds the collector watches.
func resources(client kubernetes.Interface, f informers.SharedInformerFactory) []*resource {
	core, apps, coord := v1.SchemeGroupVersion, appsv1.SchemeGroupVersion, coordinationv1.SchemeGroupVersion
	return []*resource{
		newResource(core.WithKind("Pod"), true, f.Core().V1().Pods().Informer(),
			func(ns string) typedClient[*v1.Pod] { return client.CoreV1().Pods(ns) }),
		newResource(core.WithKind("ReplicationController"), true, f.Core().V1().ReplicationControllers().Informer(),
			func(ns string) typedClient[*v1.ReplicationController] {
				return client.CoreV1().ReplicationControllers(ns)
			}),
		newResource(core.WithKind("Node"), false, f.Core().V1().Nodes().Informer(),
			func(string) typedClient[*v1.Node] { return client.CoreV1().Nodes() }),
		newResource(apps.WithKind("ReplicaSet"), true, f.Apps().V1().ReplicaSets().Informer(),
			func(ns string) typedClient[*appsv1.ReplicaSet] { return client.AppsV1().ReplicaSets(ns) }),
		newResource(apps.WithKind("Deployment"), true, f.Apps().V1().Deployments().Informer(),
			func(ns string) typedClient[*appsv1.Deployment] { return client.AppsV1().Deployments(ns) }),
		newResource(apps.WithKind("StatefulSet"), true, f.Apps().V1().StatefulSets().Informer(),
			func(ns string) typedClient[*appsv1.StatefulSet] { return client.AppsV1().StatefulSets(ns) }),
		newResource(batchv1.SchemeGroupVersion.WithKind("Job"), true, f.Batch().V1().Jobs().Informer(),
			func(ns string) typedClient[*batchv1.Job] { return client.BatchV1().Jobs(ns) }),
		newResource(batchv1.SchemeGroupVersion.WithKind("CronJob"), true, f.Batch().V1().CronJobs().Informer(),
			func(ns string) typedClient[*batchv1.CronJob] { return client.BatchV1().CronJobs(ns) }),
		newResource(apps.WithKind("DaemonSet"), true, f.Apps().V1().DaemonSets().Informer(),
			func(ns string) typedClient[*appsv1.DaemonSet] { return client.AppsV1().DaemonSets(ns) }),
		newResource(apps.WithKind("ControllerRevision"), true, f.Apps().V1().ControllerRevisions().Informer(),
			func(ns string) typedClient[*appsv1.ControllerRevision] {
				return client.AppsV1().ControllerRevisions(ns)
			}),
		newResource(core.WithKind("PersistentVolumeClaim"), true, f.Core().V1().PersistentVolumeClaims().Informer(),
			func(ns string) typedClient[*v1.PersistentVolumeClaim] {
				return client.CoreV1().PersistentVolumeClaims(ns)
			}),
		newResource(coord.WithKind("Lease"), true, f.Coordination().V1().Leases().Informer(),
			func(ns string) typedClient[*coordinationv1.Lease] { return client.CoordinationV1().Leases(ns) }),
	}
}
