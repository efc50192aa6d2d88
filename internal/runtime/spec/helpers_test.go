package spec

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ptr[T any](v T) *T { return &v }

// testInput returns an Input for a one-container pod "web" in namespace
// "default"; mutate the returned value's Pod/Container as needed.
func testInput() Input {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "default", UID: "uid-1",
			Labels:      map[string]string{"app": "web"},
			Annotations: map[string]string{"note": "hi"},
		},
		Spec: corev1.PodSpec{
			NodeName:           "node-a",
			ServiceAccountName: "sa",
			Containers:         []corev1.Container{{Name: "main", Image: "busybox"}},
			InitContainers:     []corev1.Container{{Name: "init", Image: "busybox"}},
		},
	}
	return Input{
		Pod:         pod,
		Container:   &pod.Spec.Containers[0],
		Image:       ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "IMG=1"}},
		Rootfs:      "/rootfs",
		Hostname:    "web",
		CgroupsPath: "/peapod/sb/ctr",
		Namespaces:  SandboxNamespaces{Net: "/proc/1/ns/net", IPC: "/proc/1/ns/ipc", UTS: "/proc/1/ns/uts"},
		PodIP:       "10.0.0.5",
		HostIP:      "192.168.1.1",
		Passwd:      []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nwww-data:x:33:33::/var/www:/bin/sh\n"),
		Group:       []byte("root:x:0:\nnogroup:x:65534:\nwww-data:x:33:\nvideo:x:44:www-data,other\naudio:x:29:other\n"),
	}
}

// wantErr checks err against a wanted substring and sentinel ("" = no error).
func wantErr(t *testing.T, err error, sub string, sentinel error) {
	t.Helper()
	if sub == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want error containing %q, got nil", sub)
	}
	if !strings.Contains(err.Error(), sub) {
		t.Fatalf("error %q does not contain %q", err, sub)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Fatalf("error %q is not %v", err, sentinel)
	}
}
