// Package controllertest is the test harness of peapod's controllers: a
// fake clientset that behaves enough like the API server for controllers
// (generateName, UIDs, creation timestamps) and polling helpers for tests.
package controllertest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
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
	return c
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
