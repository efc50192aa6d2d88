package apiserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/peapod/peapod/internal/storage"
)

// A server whose embedded etcd fills its space quota refuses writes with
// etcd's reason; once the data is deleted, its maintenance compacts,
// defragments and disarms the alarm, writes are taken again, a Warning
// Event in kube-system says what happened, and status.json (what `peapod
// ps` shows) has the sizes.
func TestServerRecoversFromFullStateStore(t *testing.T) {
	dir := tempDir(t)
	const quota = 32 << 20
	s, stop := startServerConfig(t, Config{DataDir: dir, Listen: "127.0.0.1:0", BookmarkInterval: time.Second,
		EtcdQuotaBackendBytes: quota, EtcdMaintenanceInterval: 200 * time.Millisecond}, nil)
	defer stop()
	rc, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cms := cs.CoreV1().ConfigMaps("default")
	value := strings.Repeat("x", 1000<<10)
	var names []string
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		name := fmt.Sprintf("fill-%03d", i)
		if _, full = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": value}}, metav1.CreateOptions{}); full == nil {
			names = append(names, name)
		}
	}
	if full == nil || !strings.Contains(full.Error(), "database space exceeded") {
		t.Fatalf("writes past a %d MiB quota: %v, want etcd's \"database space exceeded\"", quota>>20, full)
	}
	for _, name := range names {
		if err := cms.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete %s while the store is full: %v", name, err)
		}
	}
	for {
		_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("writes not taken again after the data was deleted: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var event *corev1.Event
	for event == nil {
		evs, err := cs.CoreV1().Events(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{FieldSelector: "reason=EtcdSpaceRecovered"})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs.Items) > 0 {
			event = &evs.Items[0]
		} else if ctx.Err() != nil {
			t.Fatal("no EtcdSpaceRecovered event in kube-system")
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if event.Type != corev1.EventTypeWarning || event.InvolvedObject.Name != metav1.NamespaceSystem || !strings.Contains(event.Message, "quota") {
		t.Fatalf("event: %+v", event)
	}
	st, err := storage.ReadDBStatus(s.embedded.Dir())
	if err != nil || st == nil || st.Quota != quota || len(st.Alarms) != 0 || st.DBSize >= quota {
		t.Fatalf("status.json after recovery: %+v %v", st, err)
	}
}
