package apiserver

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func clientset(t *testing.T, kubeconfig string, protobuf bool) *kubernetes.Clientset {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if protobuf {
		rc.ContentType = "application/vnd.kubernetes.protobuf"
		rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	return kubernetes.NewForConfigOrDie(rc)
}

// TestRestartAndInformer: objects and resourceVersions survive a restart
// on the same data dir (PKI reused), and a protobuf client-go informer
// lists and watches pods.
func TestRestartAndInformer(t *testing.T) {
	dir := tempDir(t)
	s, stop := startServer(t, dir)
	ctx := context.Background()
	cs := clientset(t, s.Kubeconfig(), true)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "keep"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	created, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stop()

	s2, stop2 := startServer(t, dir)
	t.Cleanup(stop2)
	cs = clientset(t, s2.Kubeconfig(), true)
	got, err := cs.CoreV1().Pods("default").Get(ctx, "keep", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != created.ResourceVersion || got.UID != created.UID {
		t.Fatalf("after restart: rv %s uid %s, want %s %s", got.ResourceVersion, got.UID, created.ResourceVersion, created.UID)
	}

	factory := informers.NewSharedInformerFactory(cs, 0)
	inf := factory.Core().V1().Pods().Informer()
	events := make(chan string, 10)
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { events <- "add " + obj.(*corev1.Pod).Name },
		UpdateFunc: func(_, obj interface{}) { events <- "update " + obj.(*corev1.Pod).Name },
	})
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	factory.Start(ictx.Done())
	if !cache.WaitForCacheSync(ictx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	expect := func(want string) {
		t.Helper()
		select {
		case ev := <-events:
			if ev != want {
				t.Fatalf("informer event %q, want %q", ev, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no informer event %q", want)
		}
	}
	expect("add keep")
	pod2 := pod.DeepCopy()
	pod2.Name = "second"
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod2, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("add second")
}
