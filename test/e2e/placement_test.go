package e2e

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestPlacementAcrossNodes: on the shared 3-node cluster, the placement
// features users reach for once there are several nodes put running pods
// where Kubernetes would: required pod anti-affinity on the hostname puts
// one replica per node and leaves a fourth Pending (Unschedulable, the
// scheduler's reason in an event); required node affinity runs a pod on
// the one node carrying the label; pod affinity runs a pod beside the pod
// it names. (Topology spread and hostNetwork across nodes are proven by
// testPodNetwork; the scheduler's scoring by TestScheduling.)
func TestPlacementAcrossNodes(t *testing.T) {
	mn := sharedMultiNode(t)
	st := mn.state(t)
	ns := mn.namespace("placement")
	defer mn.kubectl("delete", "namespace", ns, "--wait=false")

	t.Run("required pod anti-affinity: one replica per node, the fourth Pending", func(t *testing.T) {
		mn := mn.with(t)
		mn.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: solo, namespace: %s}
spec:
  replicas: 3
  selector: {matchLabels: {app: solo}}
  template:
    metadata: {labels: {app: solo}}
    spec:
      terminationGracePeriodSeconds: 0
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: solo}}}
      containers:
      - {name: c, image: busybox, command: [sleep, "3600"]}
`, ns))
		pods := mn.waitPods(ns, "app=solo", 3, 3*time.Minute)
		seen := map[string]string{}
		for _, p := range pods {
			if other, dup := seen[p.Spec.NodeName]; dup {
				t.Errorf("pods %s and %s share node %s despite required anti-affinity", other, p.Name, p.Spec.NodeName)
			}
			seen[p.Spec.NodeName] = p.Name
		}
		if len(seen) != len(st.Nodes) {
			t.Errorf("replicas on %d nodes (%v), want one on each of %d", len(seen), seen, len(st.Nodes))
		}
		mn.must("-n", ns, "scale", "deployment/solo", "--replicas=4")
		var pending string
		mn.eventually(time.Minute, func() error {
			for _, p := range mn.listPods(ns, "app=solo") {
				if p.Spec.NodeName == "" && p.DeletionTimestamp == nil {
					pending = p.Name
					return nil
				}
			}
			return fmt.Errorf("no unbound fourth replica yet")
		})
		mn.failedScheduling(ns, pending, "didn't match pod anti-affinity rules")
		p := mn.waitPod(ns, pending, 30*time.Second, "Unschedulable", func(p *corev1.Pod) bool {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
					return true
				}
			}
			return false
		})
		if p.Spec.NodeName != "" {
			t.Errorf("fourth replica bound to %s", p.Spec.NodeName)
		}
		mn.must("-n", ns, "delete", "deployment/solo", "--grace-period=0", "--force")
	})

	t.Run("required node affinity runs the pod on the labelled node; pod affinity beside its peer", func(t *testing.T) {
		mn := mn.with(t)
		target := st.Nodes[len(st.Nodes)-1].Name
		mn.must("label", "node", target, "e2e/disk=ssd", "--overwrite")
		t.Cleanup(func() { _, _ = mn.kubectl("label", "node", target, "e2e/disk-") })
		mn.apply(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: ssd, namespace: %[1]s, labels: {role: ssd}}
spec:
  terminationGracePeriodSeconds: 0
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: e2e/disk, operator: In, values: [ssd]}]
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: beside, namespace: %[1]s}
spec:
  terminationGracePeriodSeconds: 0
  affinity:
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {role: ssd}}}
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
`, ns))
		for _, name := range []string{"ssd", "beside"} {
			p := mn.waitPod(ns, name, 2*time.Minute, "running", running)
			if p.Spec.NodeName != target {
				t.Errorf("pod %s runs on %s, want %s (the node labelled e2e/disk=ssd)", name, p.Spec.NodeName, target)
			}
		}
	})
}
