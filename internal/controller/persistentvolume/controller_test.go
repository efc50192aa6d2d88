package persistentvolume

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

// events collects a FakeRecorder's events for the test to wait on.
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) drain(r *record.FakeRecorder, stop <-chan struct{}) {
	for {
		select {
		case ev := <-r.Events:
			e.mu.Lock()
			e.got = append(e.got, ev)
			e.mu.Unlock()
		case <-stop:
			return
		}
	}
}

func (e *events) has(want string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, g := range e.got {
		if g == want {
			return nil
		}
	}
	return fmt.Errorf("no event %q in %q", want, e.got)
}

func start(t *testing.T, objs ...runtime.Object) (*fake.Clientset, *events) {
	t.Helper()
	client := controllertest.NewClientset(objs...)
	rec := record.NewFakeRecorder(1000)
	ev := &events{}
	stop := make(chan struct{})
	go ev.drain(rec, stop)
	t.Cleanup(func() { close(stop) })
	controllertest.Start(t, client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(client, f, Options{Logger: slog.New(slog.DiscardHandler), Recorder: rec, StorageDir: "/default/storage"})
	})
	return client, ev
}

func getClaim(t *testing.T, client *fake.Clientset, name string) *v1.PersistentVolumeClaim {
	t.Helper()
	c, err := client.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newClaim(name, size, class string) *v1.PersistentVolumeClaim {
	c := claim(size, class, v1.ReadWriteOnce)
	c.Name, c.UID = name, types.UID("uid-"+name)
	c.Finalizers = []string{pvcProtection}
	return c
}

// TestLocalPathProvisioning: a WaitForFirstConsumer claim of the default
// class waits for its node, is then provisioned on that node's storage
// directory and bound; deleted while a pod uses it, it stays until the
// pod is gone, and its volume is then Released for the node to remove.
func TestLocalPathProvisioning(t *testing.T) {
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{v1.LabelHostname: "n1"},
		Annotations: map[string]string{AnnNodeStorageDir: "/data/storage"}}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: v1.PodSpec{NodeName: "n1", Volumes: []v1.Volume{
		{Name: "v", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}},
		Status: v1.PodStatus{Phase: v1.PodRunning}}
	client, ev := start(t, node, pod, newClaim("data", "2Gi", LocalPathClass))
	ctx := context.Background()

	controllertest.Eventually(t, 5*time.Second, "default class", func() error {
		sc, err := client.StorageV1().StorageClasses().Get(ctx, LocalPathClass, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if sc.Provisioner != LocalPathProvisioner || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer ||
			sc.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" {
			return fmt.Errorf("class %+v", sc)
		}
		return nil
	})
	controllertest.Eventually(t, 5*time.Second, "WaitForFirstConsumer event", func() error {
		return ev.has("Normal WaitForFirstConsumer waiting for first consumer to be created before binding")
	})
	if c := getClaim(t, client, "data"); c.Spec.VolumeName != "" {
		t.Fatalf("claim bound before its pod was scheduled: %s", c.Spec.VolumeName)
	}

	c := getClaim(t, client, "data")
	c.Annotations = map[string]string{AnnSelectedNode: "n1"}
	if _, err := client.CoreV1().PersistentVolumeClaims("ns").Update(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 5*time.Second, "claim bound", func() error {
		c := getClaim(t, client, "data")
		if c.Status.Phase != v1.ClaimBound || c.Spec.VolumeName != "pvc-uid-data" || c.Status.Capacity.Storage().String() != "2Gi" {
			return fmt.Errorf("claim %+v %+v", c.Spec, c.Status)
		}
		pv, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-uid-data", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pv.Status.Phase != v1.VolumeBound {
			return fmt.Errorf("volume phase %s", pv.Status.Phase)
		}
		return nil
	})
	pv, _ := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-uid-data", metav1.GetOptions{})
	if pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != "/data/storage/pvc-uid-data_ns_data" ||
		*pv.Spec.HostPath.Type != v1.HostPathDirectoryOrCreate || pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete ||
		pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "n1" ||
		pv.Annotations[AnnProvisionedBy] != LocalPathProvisioner || pv.Spec.StorageClassName != LocalPathClass {
		t.Fatalf("provisioned volume: %+v %v", pv.Spec, pv.Annotations)
	}
	if err := ev.has("Normal ProvisioningSucceeded Successfully provisioned volume pvc-uid-data"); err != nil {
		t.Error(err)
	}

	// Deleted while in use: the finalizer stays until the pod is gone.
	if err := client.CoreV1().PersistentVolumeClaims("ns").Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 5*time.Second, "claim terminating", func() error {
		if c := getClaim(t, client, "data"); c.DeletionTimestamp == nil {
			return fmt.Errorf("not terminating")
		}
		return nil
	})
	if c := getClaim(t, client, "data"); len(c.Finalizers) != 1 {
		t.Fatalf("finalizer of a claim in use removed: %v", c.Finalizers)
	}
	if err := client.CoreV1().Pods("ns").Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 5*time.Second, "claim gone, volume released", func() error {
		if _, err := client.CoreV1().PersistentVolumeClaims("ns").Get(ctx, "data", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("claim still there: %v", err)
		}
		pv, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-uid-data", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pv.Status.Phase != v1.VolumeReleased {
			return fmt.Errorf("volume phase %s", pv.Status.Phase)
		}
		return nil
	})
}

// TestStaticBinding: claims bind to the smallest fitting static volume;
// one no volume fits stays Pending with Kubernetes' event for its class;
// released volumes follow their reclaim policy.
func TestStaticBinding(t *testing.T) {
	immediate := storagev1.VolumeBindingImmediate
	manual := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "manual"}, Provisioner: "kubernetes.io/no-provisioner", VolumeBindingMode: &immediate}
	ext := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "ext"}, Provisioner: "example.com/nfs", VolumeBindingMode: &immediate}
	keep := pv("keep", "1Gi", "manual", v1.ReadWriteOnce)
	drop := pv("drop", "5Gi", "manual", v1.ReadWriteOnce)
	drop.Spec.PersistentVolumeReclaimPolicy = v1.PersistentVolumeReclaimDelete
	keep.Spec.PersistentVolumeReclaimPolicy = v1.PersistentVolumeReclaimRetain
	client, ev := start(t, manual, ext, keep, drop,
		newClaim("small", "500Mi", "manual"), newClaim("big", "10Gi", "manual"), newClaim("nfs", "1Gi", "ext"),
		newClaim("classless", "1Gi", "-"), newClaim("noclass", "1Gi", "missing"))
	ctx := context.Background()
	controllertest.Eventually(t, 5*time.Second, "small bound to keep", func() error {
		if c := getClaim(t, client, "small"); c.Status.Phase != v1.ClaimBound || c.Spec.VolumeName != "keep" {
			return fmt.Errorf("claim small: %s %q", c.Status.Phase, c.Spec.VolumeName)
		}
		return nil
	})
	for _, want := range []string{
		"Warning ProvisioningFailed no volume plugin matched name: kubernetes.io/no-provisioner",
		"Normal ExternalProvisioning Waiting for a volume to be created either by the external provisioner 'example.com/nfs' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
		"Normal FailedBinding no persistent volumes available for this claim and no storage class is set",
		`Warning ProvisioningFailed storageclass.storage.k8s.io "missing" not found`,
	} {
		controllertest.Eventually(t, 5*time.Second, "event", func() error { return ev.has(want) })
	}
	if c := getClaim(t, client, "big"); c.Status.Phase == v1.ClaimBound || c.Spec.VolumeName != "" {
		t.Fatalf("claim big bound: %+v", c.Spec)
	}

	// Claims gone: Retain keeps its volume Released; Delete with no
	// deleter for a static hostPath volume fails, as in Kubernetes.
	claimDrop := newClaim("medium", "3Gi", "manual")
	claimDrop.Finalizers = nil
	if _, err := client.CoreV1().PersistentVolumeClaims("ns").Create(ctx, claimDrop, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 5*time.Second, "medium bound to drop", func() error {
		if c := getClaim(t, client, "medium"); c.Spec.VolumeName != "drop" || c.Status.Phase != v1.ClaimBound {
			return fmt.Errorf("claim medium: %s %q", c.Status.Phase, c.Spec.VolumeName)
		}
		return nil
	})
	small := getClaim(t, client, "small")
	small.Finalizers = nil
	if _, err := client.CoreV1().PersistentVolumeClaims("ns").Update(ctx, small, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"small", "medium"} {
		if err := client.CoreV1().PersistentVolumeClaims("ns").Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	controllertest.Eventually(t, 5*time.Second, "reclaim", func() error {
		k, err := client.CoreV1().PersistentVolumes().Get(ctx, "keep", metav1.GetOptions{})
		if err != nil {
			return err
		}
		d, err := client.CoreV1().PersistentVolumes().Get(ctx, "drop", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if k.Status.Phase != v1.VolumeReleased || d.Status.Phase != v1.VolumeFailed ||
			!strings.Contains(d.Status.Message, "no deletable volume plugin matched") {
			return fmt.Errorf("keep %s, drop %s %q", k.Status.Phase, d.Status.Phase, d.Status.Message)
		}
		return nil
	})
}

// TestMisboundAndLost: a claim whose volume is held by another claim, or
// gone, is Lost with Kubernetes' event; the other claim keeps the volume.
func TestMisboundAndLost(t *testing.T) {
	taken := pv("taken", "1Gi", "", v1.ReadWriteOnce)
	taken.Spec.ClaimRef = &v1.ObjectReference{Namespace: "ns", Name: "owner", UID: "uid-owner"}
	bound := func(name, volume string) *v1.PersistentVolumeClaim {
		c := newClaim(name, "1Gi", "-")
		c.Spec.VolumeName = volume
		c.Annotations = map[string]string{AnnBindCompleted: "yes"}
		return c
	}
	client, ev := start(t, taken, bound("owner", "taken"), bound("thief", "taken"), bound("orphan", "gone"))
	controllertest.Eventually(t, 5*time.Second, "phases", func() error {
		o, th, or := getClaim(t, client, "owner"), getClaim(t, client, "thief"), getClaim(t, client, "orphan")
		if o.Status.Phase != v1.ClaimBound || th.Status.Phase != v1.ClaimLost || or.Status.Phase != v1.ClaimLost {
			return fmt.Errorf("owner %s, thief %s, orphan %s", o.Status.Phase, th.Status.Phase, or.Status.Phase)
		}
		return nil
	})
	for _, want := range []string{
		"Warning ClaimMisbound Two claims are bound to the same volume, this one is bound incorrectly",
		"Warning ClaimLost Bound claim has lost its PersistentVolume. Data on the volume is lost!",
	} {
		if err := ev.has(want); err != nil {
			t.Error(err)
		}
	}
	if v, _ := client.CoreV1().PersistentVolumes().Get(context.Background(), "taken", metav1.GetOptions{}); v.Spec.ClaimRef.UID != "uid-owner" {
		t.Fatalf("the volume changed hands: %+v", v.Spec.ClaimRef)
	}
}
