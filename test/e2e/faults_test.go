package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kill -9 of peapod (server, etcd and the node's agent in one process)
// during a write storm and while pods are being created: every write
// acknowledged before the kill is there after the restart, and every pod
// ends up with exactly one sandbox, none orphaned.
func TestKillNineDuringWritesLosesNothingAndLeavesNoOrphans(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	acked := map[string]string{} // ConfigMap name → the value acknowledged
	var pods []string            // pods whose create was acknowledged
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				name, value := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("value-%d-%d", w, i)
				_, err := c.client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": value}}, metav1.CreateOptions{})
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked[name] = value
				mu.Unlock()
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			name := fmt.Sprintf("storm-%d", i)
			_, err := c.client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.PodSpec{TerminationGracePeriodSeconds: new(int64),
					Containers: []corev1.Container{{Name: "c", Image: "busybox", Command: []string{"sleep", "3600"}}}},
			}, metav1.CreateOptions{})
			if err != nil {
				return
			}
			mu.Lock()
			pods = append(pods, name)
			mu.Unlock()
		}
	}()
	// Kill once the storm is well under way and some pods are starting.
	c.eventually(60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 300 || len(pods) < 8 {
			return fmt.Errorf("%d writes and %d pods acknowledged so far", len(acked), len(pods))
		}
		return nil
	})
	c.kill(syscall.SIGKILL)
	cancel()
	wg.Wait()
	c.start()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("killed after %d acknowledged writes and %d acknowledged pod creates", len(acked), len(pods))
	list, err := c.client.CoreV1().ConfigMaps("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for _, cm := range list.Items {
		stored[cm.Name] = cm.Data["v"]
	}
	lost := 0
	for name, value := range acked {
		if stored[name] != value {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged write %s=%s is %q after the restart", name, value, stored[name])
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", lost, len(acked))
	}

	// Every pod the API has (acknowledged or not) runs in exactly one
	// sandbox; no sandbox is left for a pod that is not there.
	var uids []string
	c.eventually(120*time.Second, func() error {
		all, err := c.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		uids = uids[:0]
		for _, p := range all.Items {
			if !running(&p) {
				return fmt.Errorf("pod %s is %s on node %q: conditions %+v, containers %+v; %s", p.Name, p.Status.Phase,
					p.Spec.NodeName, p.Status.Conditions, p.Status.ContainerStatuses, strings.Join(c.eventReasons("default", p.Name), ","))
			}
			uids = append(uids, string(p.UID))
		}
		return nil
	})
	if len(uids) < len(pods) {
		t.Fatalf("%d pods after the restart, %d were acknowledged", len(uids), len(pods))
	}
	c.eventually(60*time.Second, func() error {
		perPod := map[string]int{}
		entries, err := os.ReadDir(filepath.Join(c.dir, "pods"))
		if err != nil {
			return err
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(c.dir, "pods", e.Name(), "sandbox.json"))
			if err != nil {
				return fmt.Errorf("sandbox %s: %v", e.Name(), err)
			}
			owner := ""
			for _, uid := range uids {
				if strings.Contains(string(data), uid) {
					owner = uid
				}
			}
			if owner == "" {
				return fmt.Errorf("sandbox %s belongs to no pod of the API (orphaned)", e.Name())
			}
			perPod[owner]++
		}
		for _, uid := range uids {
			if perPod[uid] != 1 {
				return fmt.Errorf("pod %s has %d sandboxes, want 1", uid, perPod[uid])
			}
		}
		return nil
	})
}
