package apiserver

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/peapod/peapod/internal/storage"
)

// restart starts a stopped member again with its data.
func (m *etcdMember) restart(t *testing.T) {
	t.Helper()
	cmd := exec.Command(m.cmd.Path, m.cmd.Args[1:]...)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.cmd, m.done = cmd, make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(cmd, m.done)
}

// With the external etcd out of reach (every member stopped) for longer
// than a request's bound, the API answers reads and writes with a 503
// instead of hanging through the outage; once the members are back the
// writes acknowledged before are there, new ones are taken, and a watch
// opened before the outage carries on.
func TestEtcdOutageIsAnsweredPromptly(t *testing.T) {
	requireEtcd(t)
	dir := tempDir(t)
	members := startEtcdCluster(t, dir, nil)
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.clientURL)
	}
	s, stop := startServerConfig(t, Config{DataDir: dir + "/server", Listen: "127.0.0.1:0", EtcdServers: endpoints}, members)
	defer stop()
	admin, _ := clientFor(t, s.Kubeconfig())
	ctx := context.Background()
	cms := admin.CoreV1().ConfigMaps("default")
	cm := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": name}}
	}
	for i := 0; i < 5; i++ {
		if _, err := cms.Create(ctx, cm(fmt.Sprintf("before-%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	for _, m := range members {
		m.stop()
	}
	// The client waits at most twice the server's bound: an answer within
	// it is the prompt 503; a timeout on the client's side is a hang.
	rctx, cancel := context.WithTimeout(ctx, 2*storage.RequestTimeout+5*time.Second)
	defer cancel()
	if _, err := cms.Get(rctx, "before-0", metav1.GetOptions{}); !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("read with etcd unreachable: %v, want a 503", err)
	}
	if _, err := cms.Create(rctx, cm("during"), metav1.CreateOptions{}); !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("write with etcd unreachable: %v, want a 503", err)
	}
	if rctx.Err() != nil {
		t.Fatal("the client gave up before the server answered")
	}

	for _, m := range members {
		m.restart(t)
	}
	var lastErr error
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, lastErr = cms.Create(ctx, cm("after"), metav1.CreateOptions{}); lastErr == nil || apierrors.IsAlreadyExists(lastErr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write taken after etcd came back: %v", lastErr)
		}
	}
	for i := 0; i < 5; i++ {
		if got, err := cms.Get(ctx, fmt.Sprintf("before-%d", i), metav1.GetOptions{}); err != nil || got.Data["k"] != fmt.Sprintf("before-%d", i) {
			t.Fatalf("write acknowledged before the outage: %v %v", got, err)
		}
	}
	// The watch opened before the outage sees the write after it (or
	// ends, as a watch may, for the client to resume from its last
	// resourceVersion: client-go's informers do).
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return
			}
			if ev.Type == watch.Error {
				return
			}
			if c, ok := ev.Object.(*corev1.ConfigMap); ok && c.Name == "after" {
				return
			}
		case <-timeout:
			t.Fatal(errors.New("the watch opened before the outage neither delivered the write after it nor ended"))
		}
	}
}
