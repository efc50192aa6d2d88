// Package controllertest is the test harness of peapod's controllers: a
// fake clientset that behaves enough like the API server for controllers,
// Start and Run to run controllers for the length of a test, and polling
// helpers for tests.
//
// On top of client-go's fake, NewClientset's reactors give:
//   - create: name from generateName, UID, creationTimestamp, generation 1,
//     a resourceVersion;
//   - update: optimistic concurrency (a stale non-empty resourceVersion is a
//     Conflict), a fresh resourceVersion, the status subresource (an update
//     of "status" changes only status, a main update keeps the stored
//     status), generation bumped when anything but metadata and status
//     changes;
//   - delete: UID preconditions; propagationPolicy Foreground/Orphan and
//     finalizers set deletionTimestamp (adding the foregroundDeletion or
//     orphan finalizer) instead of deleting; an update that leaves a
//     deleting object without finalizers deletes it.
//
// Patches go through client-go's fake unchanged (no resourceVersion bump).
package controllertest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

var seq atomic.Int64

// NewClientset returns a fake clientset holding objs whose creates fill in
// metadata.name from generateName, a UID, a creationTimestamp and
// generation 1, as the API server would. Objects passed in objs get a UID
// when they lack one.
func NewClientset(objs ...runtime.Object) *fake.Clientset {
	for _, o := range objs {
		fillMeta(o)
	}
	c := fake.NewClientset(objs...)
	c.PrependReactor("create", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		ca, ok := a.(clienttesting.CreateAction)
		if !ok || ca.GetSubresource() != "" {
			return false, nil, nil
		}
		fillMeta(ca.GetObject())
		return false, nil, nil
	})
	c.PrependReactor("update", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		ua, ok := a.(clienttesting.UpdateAction)
		if !ok || (ua.GetSubresource() != "" && ua.GetSubresource() != "status") {
			return false, nil, nil
		}
		return update(c.Tracker(), ua)
	})
	c.PrependReactor("delete", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		da, ok := a.(clienttesting.DeleteAction)
		if !ok || da.GetSubresource() != "" {
			return false, nil, nil
		}
		return del(c.Tracker(), da)
	})
	return c
}

var rv atomic.Int64

func nextRV() string { return strconv.FormatInt(rv.Add(1)+1000, 10) }

func update(tr clienttesting.ObjectTracker, ua clienttesting.UpdateAction) (bool, runtime.Object, error) {
	gvr, ns := ua.GetResource(), ua.GetNamespace()
	obj := ua.GetObject()
	m, err := meta.Accessor(obj)
	if err != nil {
		return false, nil, nil
	}
	cur, err := tr.Get(gvr, ns, m.GetName())
	if err != nil {
		return true, nil, err
	}
	cm, _ := meta.Accessor(cur)
	if m.GetResourceVersion() != "" && m.GetResourceVersion() != cm.GetResourceVersion() {
		return true, nil, apierrors.NewConflict(gvr.GroupResource(), m.GetName(),
			fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
	}
	newU, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return true, nil, err
	}
	curU, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cur)
	if err != nil {
		return true, nil, err
	}
	out := newU
	if ua.GetSubresource() == "status" {
		out = curU
		out["status"] = newU["status"]
	} else if st, ok := curU["status"]; ok {
		out["status"] = st
	}
	res := obj.DeepCopyObject()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(out, res); err != nil {
		return true, nil, err
	}
	rm, _ := meta.Accessor(res)
	rm.SetUID(cm.GetUID())
	rm.SetCreationTimestamp(cm.GetCreationTimestamp())
	rm.SetGeneration(cm.GetGeneration())
	if ua.GetSubresource() == "" {
		rm.SetDeletionTimestamp(cm.GetDeletionTimestamp())
		if contentChanged(newU, curU) {
			rm.SetGeneration(cm.GetGeneration() + 1)
		}
		if cm.GetDeletionTimestamp() != nil && len(rm.GetFinalizers()) == 0 {
			return true, res, tr.Delete(gvr, ns, m.GetName())
		}
	}
	rm.SetResourceVersion(nextRV())
	return true, res, tr.Update(gvr, res, ns)
}

// contentChanged compares everything but metadata and status, as the API
// server does to bump metadata.generation (kinds without a spec, such as
// EndpointSlices, carry their content at the top level).
func contentChanged(a, b map[string]interface{}) bool {
	strip := func(m map[string]interface{}) map[string]interface{} {
		c := make(map[string]interface{}, len(m))
		for k, v := range m {
			if k != "metadata" && k != "status" && k != "apiVersion" && k != "kind" {
				c[k] = v
			}
		}
		return c
	}
	return !reflect.DeepEqual(strip(a), strip(b))
}

func del(tr clienttesting.ObjectTracker, da clienttesting.DeleteAction) (bool, runtime.Object, error) {
	gvr, ns := da.GetResource(), da.GetNamespace()
	cur, err := tr.Get(gvr, ns, da.GetName())
	if err != nil {
		return false, nil, nil // the default reactor answers NotFound
	}
	cur = cur.DeepCopyObject()
	cm, _ := meta.Accessor(cur)
	opts := da.GetDeleteOptions()
	if opts.Preconditions != nil && opts.Preconditions.UID != nil && *opts.Preconditions.UID != cm.GetUID() {
		return true, nil, apierrors.NewConflict(gvr.GroupResource(), da.GetName(), fmt.Errorf("precondition failed: UID in precondition: %v, UID in object meta: %v", *opts.Preconditions.UID, cm.GetUID()))
	}
	add := ""
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationForeground:
			add = metav1.FinalizerDeleteDependents
		case metav1.DeletePropagationOrphan:
			add = metav1.FinalizerOrphanDependents
		}
	}
	if len(cm.GetFinalizers()) == 0 && add == "" {
		return false, nil, nil
	}
	if cm.GetDeletionTimestamp() == nil {
		now := metav1.Now()
		cm.SetDeletionTimestamp(&now)
	}
	if add != "" && !slices.Contains(cm.GetFinalizers(), add) {
		cm.SetFinalizers(append(cm.GetFinalizers(), add))
	}
	cm.SetResourceVersion(nextRV())
	return true, cur, tr.Update(gvr, cur, ns)
}

func fillMeta(o runtime.Object) {
	m, err := meta.Accessor(o)
	if err != nil {
		return
	}
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(m.GetGenerateName() + utilrand.String(5))
	}
	if m.GetUID() == "" {
		m.SetUID(types.UID(fmt.Sprintf("uid-%d-%s", seq.Add(1), utilrand.String(6))))
	}
	if ts := m.GetCreationTimestamp(); ts.IsZero() {
		m.SetCreationTimestamp(metav1.Now())
	}
	if m.GetGeneration() == 0 {
		m.SetGeneration(1)
	}
	m.SetResourceVersion(nextRV())
}

// Eventually polls cond every 5ms until it returns true or timeout passes,
// then fails t with msg and the last error cond reported.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %v: %v", msg, timeout, err)
}

// Runner is a controller as tests run it: Run blocks until ctx ends.
type Runner interface {
	Run(ctx context.Context, workers int) error
}

// Start makes one controller with newController, which registers it with
// a fresh informer factory of client, and runs it until the test ends
// (see Run). A newController error fails t.
func Start(t testing.TB, client kubernetes.Interface, newController func(informers.SharedInformerFactory) (Runner, error)) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := newController(factory)
	if err != nil {
		t.Fatal(err)
	}
	Run(t, factory, c)
}

// Run starts factory and each controller's Run with two workers. When
// the test ends it cancels them, waits for every Run to return and then
// shuts factory down, so no controller goroutine outlives the test.
// Register every controller and test handler with factory before Run.
func Run(t testing.TB, factory informers.SharedInformerFactory, controllers ...Runner) {
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	for _, c := range controllers {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Run(ctx, 2) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait(); factory.Shutdown() })
}
