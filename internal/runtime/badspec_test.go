package runtime

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/leakcheck"
)

// Bad specs fail with an error naming the cause, and leave nothing behind.
func TestBadSpecsFailClearlyAndLeaveNothing(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name, manifest, want string
		is                   error
	}{{
		name: "unknown image",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: unknown-image}
spec:
  containers:
  - {name: main, image: "127.0.0.1:1/no/such-image:v1", imagePullPolicy: IfNotPresent}
`,
		want: "127.0.0.1:1/no/such-image:v1",
	}, {
		name: "never pull a missing image",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: never-pull}
spec:
  containers:
  - {name: main, image: "example.invalid/absent:v1", imagePullPolicy: Never}
`,
		want: "imagePullPolicy is Never",
		is:   ErrImageNotPresent,
	}, {
		name: "duplicate container name",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: dup-names}
spec:
  containers:
  - {name: main, image: busybox, command: [sleep, "10"]}
  - {name: main, image: busybox, command: [sleep, "10"]}
`,
		want: `spec.containers[1].name: duplicate container name "main"`,
		is:   ErrInvalid,
	}, {
		name: "conflicting hostPort",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: dup-hostport}
spec:
  containers:
  - name: a
    image: busybox
    command: [sleep, "10"]
    ports: [{containerPort: 80, hostPort: 18080}]
  - name: b
    image: busybox
    command: [sleep, "10"]
    ports: [{containerPort: 81, hostPort: 18080}]
`,
		want: "spec.containers[1].ports[0].hostPort: host port 18080/TCP is already claimed",
		is:   ErrInvalid,
	}, {
		name: "absent hostPath Directory",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: no-hostpath}
spec:
  volumes:
  - name: data
    hostPath: {path: /nonexistent/peapod-test-dir, type: Directory}
  containers:
  - name: main
    image: busybox
    command: [sleep, "10"]
    volumeMounts: [{name: data, mountPath: /data}]
`,
		want: "/nonexistent/peapod-test-dir",
	}, {
		name: "command missing from the image",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: no-command}
spec:
  containers:
  - {name: main, image: busybox, command: ["/no/such/binary"]}
`,
		want: "/no/such/binary",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, err := leakcheck.Take(leakOptions)
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.rt.StartPod(h.ctx, h.pod(tc.manifest), "")
			if err == nil {
				t.Fatal("pod started; want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if ids, _ := h.rt.sandboxIDs(); len(ids) != 0 {
				t.Errorf("sandboxes left on disk: %v", ids)
			}
			if reserved := ipReservations(t, h.cfg.Paths().IPAMDir()); len(reserved) > 0 {
				t.Errorf("IPs left reserved: %v", reserved)
			}
			leakcheck.Check(t, before, leakOptions, 5*time.Second)
		})
	}
}

// Creating and deleting many pods leaks nothing: no netns, veth, mount,
// cgroup, process or IP reservation.
func TestManyPodsCreatedAndDeletedLeakNothing(t *testing.T) {
	h := newHarness(t)
	before, err := leakcheck.Take(leakOptions)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := 0; i < n; i++ {
		id := h.start(h.pod(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: loop-%d}
spec:
  volumes: [{name: scratch, emptyDir: {medium: Memory}}]
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
`, i)), "")
		if err := h.rt.DeletePod(h.ctx, id, time.Second); err != nil {
			t.Fatalf("delete pod %d: %v", i, err)
		}
	}
	if reserved := ipReservations(t, h.cfg.Paths().IPAMDir()); len(reserved) > 0 {
		t.Errorf("IPs left reserved: %v", reserved)
	}
	leakcheck.Check(t, before, leakOptions, 5*time.Second)
}
