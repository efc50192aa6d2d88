package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// TestPersistentVolumes is issue 13's persistent-volume acceptance on one
// real `peapod server`, through kubectl: the built-in local-path default
// class, a StatefulSet pod that gets its data back after being deleted,
// the retention policy, a claim no volume fits staying Pending with
// Kubernetes' event, and bad input refused naming the field.
func TestPersistentVolumes(t *testing.T) {
	c := startCluster(t)
	t.Run("DefaultClass", func(t *testing.T) { testDefaultStorageClass(t, c.with(t)) })
	t.Run("StatefulSetData", func(t *testing.T) { testStatefulSetData(t, c.with(t)) })
	t.Run("ScaleDownDeletesClaim", func(t *testing.T) { testWhenScaledDelete(t, c.with(t)) })
	t.Run("NoFit", func(t *testing.T) { testClaimNoFit(t, c.with(t)) })
	t.Run("BadInput", func(t *testing.T) { testStorageBadInput(t, c.with(t)) })
}

func testDefaultStorageClass(t *testing.T, c *cluster) {
	var out string
	c.eventually(30*time.Second, func() error {
		out = c.must("get", "storageclass")
		if !strings.Contains(out, "local-path (default)") {
			return fmt.Errorf("no default local-path class yet:\n%s", out)
		}
		return nil
	})
	for _, want := range []string{"NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION",
		"rancher.io/local-path", "Delete", "WaitForFirstConsumer", "false"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get storageclass lacks %q:\n%s", want, out)
		}
	}
}

// dbStatefulSet keeps a random id in its volume: written once, then only
// read, so a pod that finds another id did not get its claim back. It
// runs as a user other than root, as local-path's directories are 0777.
func dbStatefulSet(ns, name string, replicas int, whenScaled string) string {
	return fmt.Sprintf(`
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: %[3]d
  serviceName: %[2]s
  selector: {matchLabels: {app: %[2]s}}
  persistentVolumeClaimRetentionPolicy: {whenScaled: %[4]s}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      terminationGracePeriodSeconds: 1
      securityContext: {runAsUser: 1000}
      containers:
      - name: db
        image: busybox
        command: [sh, -c, "test -s /data/id || cat /proc/sys/kernel/random/uuid > /data/id; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 64Mi}}
`, ns, name, replicas, whenScaled)
}

func testStatefulSetData(t *testing.T, c *cluster) {
	ns := c.namespace("pv-sts")
	c.apply(dbStatefulSet(ns, "db", 1, "Retain"))
	first := c.waitPod(ns, "db-0", 120*time.Second, "Running", running)
	id := c.readID(ns, "db-0")

	claim, err := c.client.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), "data-db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("claim of db-0: %v", err)
	}
	if claim.Status.Phase != corev1.ClaimBound || claim.Spec.StorageClassName == nil || *claim.Spec.StorageClassName != "local-path" ||
		claim.Annotations["volume.kubernetes.io/selected-node"] != "e2e-node" {
		t.Fatalf("claim data-db-0: phase %s, class %v, annotations %v", claim.Status.Phase, claim.Spec.StorageClassName, claim.Annotations)
	}
	pv, err := c.client.CoreV1().PersistentVolumes().Get(context.Background(), claim.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("volume of data-db-0: %v", err)
	}
	dir := filepath.Join(c.dir, "storage", "pvc-"+string(claim.UID)+"_"+ns+"_data-db-0")
	if pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != dir || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		pv.Spec.NodeAffinity == nil || pv.Status.Phase != corev1.VolumeBound {
		t.Fatalf("volume %s: %+v, status %+v", pv.Name, pv.Spec, pv.Status)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "id")); err != nil || strings.TrimSpace(string(b)) != id {
		t.Fatalf("the node's directory %s holds %q, %v; the pod read %q", dir, b, err, id)
	}
	for _, args := range [][]string{
		{"get", "pvc", "-n", ns},
		{"get", "pv"},
	} {
		out := c.must(args...)
		for _, want := range []string{"data-db-0", "Bound", "64Mi", "RWO", "local-path"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl %s lacks %q:\n%s", strings.Join(args, " "), want, out)
			}
		}
	}

	// The pod deleted comes back, as a new pod, with the same data.
	c.must("delete", "pod", "-n", ns, "db-0", "--wait=false")
	second := c.waitPod(ns, "db-0", 120*time.Second, "Running again", func(p *corev1.Pod) bool {
		return p.UID != first.UID && running(p)
	})
	if got := c.readID(ns, "db-0"); got != id {
		t.Fatalf("db-0 came back (uid %s) with id %q; it wrote %q", second.UID, got, id)
	}

	// whenDeleted Retain (the default): deleting the set keeps the claim.
	c.must("delete", "statefulset", "-n", ns, "db")
	c.waitNoPod(ns, "db-0")
	if _, err := c.client.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), "data-db-0", metav1.GetOptions{}); err != nil {
		t.Fatalf("claim data-db-0 after its set was deleted with whenDeleted Retain: %v", err)
	}
	// Deleting the claim releases the volume; reclaim policy Delete has
	// the node remove the directory and then the volume.
	c.must("delete", "pvc", "-n", ns, "data-db-0")
	c.eventually(60*time.Second, func() error {
		_, err := c.client.CoreV1().PersistentVolumes().Get(context.Background(), pv.Name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("volume %s still there: %v", pv.Name, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("directory %s still there: %v", dir, err)
		}
		return nil
	})
}

func testWhenScaledDelete(t *testing.T, c *cluster) {
	ns := c.namespace("pv-scale")
	c.apply(dbStatefulSet(ns, "web", 2, "Delete"))
	c.waitPod(ns, "web-1", 120*time.Second, "Running", running)
	c.must("scale", "-n", ns, "statefulset/web", "--replicas=1")
	c.eventually(90*time.Second, func() error {
		_, err := c.client.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), "data-web-1", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("claim data-web-1 of the scaled-away pod still there: %v", err)
		}
		return nil
	})
	if _, err := c.client.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), "data-web-0", metav1.GetOptions{}); err != nil {
		t.Fatalf("claim data-web-0 of the remaining pod: %v", err)
	}
	c.must("delete", "statefulset", "-n", ns, "web")
	c.waitNoPod(ns, "web-0")
}

func testClaimNoFit(t *testing.T, c *cluster) {
	ns := c.namespace("pv-nofit")
	c.apply(fmt.Sprintf(`
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: manual}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: small}
spec:
  storageClassName: manual
  capacity: {storage: 100Mi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: %[2]s, type: DirectoryOrCreate}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: big, namespace: %[1]s}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`, ns, filepath.Join(c.dir, "manual-small")))
	c.eventually(60*time.Second, func() error {
		evs, err := c.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.name": "big", "involvedObject.kind": "PersistentVolumeClaim"}.String()})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Type == corev1.EventTypeWarning && e.Reason == "ProvisioningFailed" &&
				e.Message == "no volume plugin matched name: kubernetes.io/no-provisioner" && e.Source.Component == "persistentvolume-controller" {
				return nil
			}
		}
		return fmt.Errorf("no ProvisioningFailed event on claim big yet: %v", evs.Items)
	})
	if out := c.must("get", "pvc", "-n", ns, "big"); !strings.Contains(out, "Pending") {
		t.Errorf("claim big is not Pending:\n%s", out)
	}
	if out := c.must("describe", "pvc", "-n", ns, "big"); !strings.Contains(out, "ProvisioningFailed") {
		t.Errorf("kubectl describe pvc big lacks the event:\n%s", out)
	}
	// The volume that was too small still binds a claim it fits.
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: fits, namespace: %s}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 50Mi}}
`, ns))
	c.eventually(60*time.Second, func() error {
		out := c.must("get", "pv", "small")
		if !strings.Contains(out, "Bound") || !strings.Contains(out, ns+"/fits") || !strings.Contains(out, "Retain") {
			return fmt.Errorf("volume small not bound to %s/fits:\n%s", ns, out)
		}
		return nil
	})
	if out := c.must("get", "pvc", "-n", ns, "big"); !strings.Contains(out, "Pending") {
		t.Errorf("claim big is not Pending after another claim bound:\n%s", out)
	}
}

func testStorageBadInput(t *testing.T, c *cluster) {
	ns := c.namespace("pv-bad")
	for _, tc := range []struct{ manifest, want string }{
		{fmt.Sprintf(`{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"nosize","namespace":%q},"spec":{"accessModes":["ReadWriteOnce"]}}`, ns),
			"spec.resources[storage]: Required value"},
		{fmt.Sprintf(`{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"zero","namespace":%q},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"0"}}}}`, ns),
			`spec.resources.requests[storage]: Invalid value: "0": must be greater than zero`},
		{fmt.Sprintf(`{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"nomode","namespace":%q},"spec":{"resources":{"requests":{"storage":"1Gi"}}}}`, ns),
			"spec.accessModes: Required value: at least 1 access mode is required"},
		{`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"nocap"},"spec":{"accessModes":["ReadWriteOnce"],"hostPath":{"path":"/tmp/x"}}}`,
			"spec.capacity: Required value"},
		{`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"nfs"},"spec":{"accessModes":["ReadWriteOnce"],"capacity":{"storage":"1Gi"},"nfs":{"server":"s","path":"/p"}}}`,
			"not supported by peapod"},
		{`{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"noprov"}}`,
			"provisioner: Required value"},
	} {
		out, err := c.kubectl("create", "-f", writeManifest(t, c, tc.manifest))
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("kubectl create %s: %v\n%s\nwant %q", tc.manifest, err, out, tc.want)
		}
	}
	// Nothing half-made.
	if out := c.must("get", "pvc", "-n", ns); !strings.Contains(out, "No resources found") {
		t.Errorf("refused claims were stored:\n%s", out)
	}
}

func writeManifest(t *testing.T, c *cluster, manifest string) string {
	t.Helper()
	f := filepath.Join(c.dir, fmt.Sprintf("manifest-%d.json", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// readID reads /data/id in the pod once the container has written it.
func (c *cluster) readID(ns, pod string) string {
	c.t.Helper()
	var id string
	c.eventually(30*time.Second, func() error {
		out, err := c.kubectlStdout("exec", "-n", ns, pod, "--", "cat", "/data/id")
		if err != nil || strings.TrimSpace(out) == "" {
			return fmt.Errorf("read /data/id in %s/%s: %v %s", ns, pod, err, out)
		}
		id = strings.TrimSpace(out)
		return nil
	})
	return id
}

// waitNoPod waits until the pod is gone from the API.
func (c *cluster) waitNoPod(ns, name string) {
	c.t.Helper()
	c.eventually(60*time.Second, func() error {
		_, err := c.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod %s/%s still there: %v", ns, name, err)
		}
		return nil
	})
}

// TestPersistentVolumesAcrossNodes: on the shared three-node cluster, a
// StatefulSet pod placed on an agent node gets its local-path volume in
// that node's data directory, comes back to that node with its data
// after being deleted, and that node removes the volume once its claim is
// deleted.
func TestPersistentVolumesAcrossNodes(t *testing.T) {
	mn := sharedMultiNode(t)
	st := mn.state(t)
	if len(st.Nodes) < 3 {
		t.Fatalf("the shared cluster has %d nodes, want 3", len(st.Nodes))
	}
	target := st.Nodes[2]
	ns := mn.namespace("pv-nodes")
	defer func() {
		if out, err := mn.kubectl("delete", "namespace", ns, "--wait=false"); err != nil {
			t.Errorf("delete namespace %s: %v %s", ns, err, out)
		}
		mn.waitGone(ns, "", 0, 2*time.Minute)
	}()
	mn.apply(strings.Replace(dbStatefulSet(ns, "db", 1, "Retain"), "      securityContext:",
		"      nodeSelector: {kubernetes.io/hostname: "+target.Name+"}\n      securityContext:", 1))
	first := mn.waitPod(ns, "db-0", 3*time.Minute, "Running", running)
	if first.Spec.NodeName != target.Name {
		t.Fatalf("db-0 on %s, want %s", first.Spec.NodeName, target.Name)
	}
	id := mn.readID(ns, "db-0")
	ctx := context.Background()
	claim, err := mn.client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node, err := mn.client.CoreV1().Nodes().Get(ctx, target.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	storageDir := node.Annotations["storage.peapod.io/local-path-dir"]
	if storageDir != filepath.Join(target.DataDir, "storage") {
		t.Fatalf("node %s publishes storage dir %q, want under its data dir %s", target.Name, storageDir, target.DataDir)
	}
	dir := filepath.Join(storageDir, "pvc-"+string(claim.UID)+"_"+ns+"_data-db-0")
	if b, err := os.ReadFile(filepath.Join(dir, "id")); err != nil || strings.TrimSpace(string(b)) != id {
		t.Fatalf("node %s's directory %s holds %q, %v; the pod read %q", target.Name, dir, b, err, id)
	}

	// Deleted, the pod comes back, to the volume's node, with its data;
	// the StatefulSet's template no longer needs to pin it: the volume does.
	mn.must("patch", "statefulset", "-n", ns, "db", "--type=json", "-p", `[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]`)
	mn.waitPod(ns, "db-0", 3*time.Minute, "replaced by the rollout", func(p *corev1.Pod) bool { return p.UID != first.UID && running(p) })
	second := mn.waitPod(ns, "db-0", time.Minute, "Running", running)
	mn.must("delete", "pod", "-n", ns, "db-0", "--wait=false")
	third := mn.waitPod(ns, "db-0", 3*time.Minute, "Running again", func(p *corev1.Pod) bool { return p.UID != second.UID && running(p) })
	if third.Spec.NodeName != target.Name {
		t.Fatalf("db-0 came back on %s; its volume is on %s", third.Spec.NodeName, target.Name)
	}
	if got := mn.readID(ns, "db-0"); got != id {
		t.Fatalf("db-0 came back with id %q; it wrote %q", got, id)
	}

	mn.must("delete", "statefulset", "-n", ns, "db")
	mn.waitNoPod(ns, "db-0")
	mn.must("delete", "pvc", "-n", ns, "data-db-0")
	mn.eventually(2*time.Minute, func() error {
		if _, err := mn.client.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("volume %s still there: %v", claim.Spec.VolumeName, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("directory %s still there: %v", dir, err)
		}
		return nil
	})
}
