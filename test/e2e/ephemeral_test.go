package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ephemeralRunning reports whether the pod's ephemeral container name runs.
func ephemeralRunning(name string) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool {
		cs := containerStatus(p.Status.EphemeralContainerStatuses, name)
		return cs != nil && cs.State.Running != nil
	}
}

// TestEphemeralContainers debugs a running pod with the installed
// kubectl: `kubectl debug -it POD --image=busybox --target=c -- sh` gets
// a shell on a terminal that sees the target container's processes (its
// PID namespace), and `kubectl debug POD -c NAME -- ...` adds containers
// that exec, attach and logs reach like any other. Ephemeral containers
// run once, never restart, report in ephemeralContainerStatuses, and the
// pods/ephemeralcontainers subresource only ever adds them, with
// kube-apiserver's checks.
func TestEphemeralContainers(t *testing.T) {
	c := startCluster(t)
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: target}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sh, -c, 'exec sleep 3600']}
  - {name: other, image: busybox, command: [sleep, "3601"]}
`)
	c.waitPod("default", "target", 60*time.Second, "Running", running)

	// A shell in the target's PID namespace, on a terminal.
	term := c.onTerminal("debug", "-it", "target", "--image=busybox", "--target=c", "--", "sh")
	term.waitFor(t, 90*time.Second, regexp.MustCompile(`If you don't see a command prompt`))
	fmt.Fprint(term.stdin, "echo ready-$((1+1))\n")
	term.waitFor(t, 20*time.Second, regexp.MustCompile(`ready-2`))
	fmt.Fprint(term.stdin, "tty; ps -o pid,args; exit 7\n")
	if code := term.wait(t, 30*time.Second); code != 0 {
		t.Errorf("kubectl debug -it exited %d, want 0 once the session ended; output:\n%s", code, term.out)
	}
	shown := term.out.String()
	if !strings.Contains(shown, "Session ended, the ephemeral container will not be restarted") {
		t.Errorf("kubectl debug -it did not end its session as against a Kubernetes node:\n%s", shown)
	}
	if !regexp.MustCompile(`/dev/pts/\d+`).MatchString(shown) {
		t.Errorf("the debug shell had no terminal:\n%s", shown)
	}
	if !regexp.MustCompile(`(?m)^\s*1\s+sleep 3600`).MatchString(shown) || strings.Contains(shown, "sleep 3601") {
		t.Errorf("ps in the debug shell does not show the target's processes (PID 1 sleep 3600) and only them:\n%s", shown)
	}
	debugger := regexp.MustCompile(`debugger-[a-z0-9]+`).FindString(shown)
	if debugger == "" {
		t.Fatalf("kubectl debug named no debug container:\n%s", shown)
	}
	p := c.waitPod("default", "target", 30*time.Second, debugger+" terminated", func(p *corev1.Pod) bool {
		cs := containerStatus(p.Status.EphemeralContainerStatuses, debugger)
		return cs != nil && cs.State.Terminated != nil
	})
	if term := containerStatus(p.Status.EphemeralContainerStatuses, debugger).State.Terminated; term.ExitCode != 7 {
		t.Errorf("%s ended %+v, want exit code 7", debugger, term)
	}

	// Debug containers beside the pod's, reached by exec, attach and logs.
	c.must("debug", "target", "--image=busybox", "-c", "dbg", "--", "sleep", "1d")
	c.must("debug", "target", "--image=busybox", "-c", "talker", "--", "sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.5; done")
	p = c.waitPod("default", "target", 60*time.Second, "dbg and talker running", func(p *corev1.Pod) bool {
		return ephemeralRunning("dbg")(p) && ephemeralRunning("talker")(p)
	})
	if got := c.must("exec", "target", "-c", "dbg", "--", "sh", "-c", "echo exec-$((40+2)) from $(hostname)"); got != "exec-42 from target" {
		t.Errorf("kubectl exec into dbg: %q", got)
	}
	if got, err := c.kubectl("logs", "target", "-c", "dbg"); err != nil || got != "" {
		t.Errorf("kubectl logs dbg (sleep prints nothing): %v %q", err, got)
	}
	c.eventually(20*time.Second, func() error {
		if got, err := c.kubectl("logs", "target", "-c", "talker"); err != nil || !strings.Contains(got, "tick-0") {
			return fmt.Errorf("kubectl logs talker: %v %q", err, got)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	attach := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.kubeconfig, "attach", "target", "-c", "talker")
	attached, _ := attach.CombinedOutput() // ends with the timeout: the talker talks on
	if !regexp.MustCompile(`tick-\d+`).Match(attached) {
		t.Errorf("kubectl attach to talker showed no ticks:\n%s", attached)
	}
	// The debugger that exited stays exited: ephemeral containers never restart.
	if cs := containerStatus(p.Status.EphemeralContainerStatuses, debugger); cs == nil || cs.State.Terminated == nil {
		t.Errorf("%s after later syncs: %+v, want still terminated", debugger, cs)
	}
	if got := c.must("get", "pod", "target", "-o", "jsonpath={.spec.ephemeralContainers[*].name}"); got != debugger+" dbg talker" {
		t.Errorf("spec.ephemeralContainers: %q", got)
	}

	t.Run("only additions", func(t *testing.T) {
		c := c.with(t)
		pods := c.client.CoreV1().Pods("default")
		ctx := context.Background()
		cur, err := pods.Get(ctx, "target", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		removed := cur.DeepCopy()
		removed.Spec.EphemeralContainers = removed.Spec.EphemeralContainers[1:]
		if _, err := pods.UpdateEphemeralContainers(ctx, "target", removed, metav1.UpdateOptions{}); err == nil ||
			!strings.Contains(err.Error(), fmt.Sprintf("existing ephemeral containers %q may not be removed", debugger)) {
			t.Errorf("removing an ephemeral container: %v", err)
		}
		changed := cur.DeepCopy()
		changed.Spec.EphemeralContainers[1].Image = "busybox:other"
		if _, err := pods.UpdateEphemeralContainers(ctx, "target", changed, metav1.UpdateOptions{}); err == nil ||
			!strings.Contains(err.Error(), `existing ephemeral containers "dbg" may not be changed`) {
			t.Errorf("changing an ephemeral container: %v", err)
		}
		ported := cur.DeepCopy()
		ported.Spec.EphemeralContainers = append(ported.Spec.EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "web", Image: "busybox",
				Ports: []corev1.ContainerPort{{ContainerPort: 80}}, Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{}}}})
		if _, err := pods.UpdateEphemeralContainers(ctx, "target", ported, metav1.UpdateOptions{}); err == nil ||
			!strings.Contains(err.Error(), "spec.ephemeralContainers[3].ports: Forbidden: cannot be set for an Ephemeral Container") {
			t.Errorf("an ephemeral container with ports: %v", err)
		}
		sneaky := cur.DeepCopy()
		sneaky.Spec.EphemeralContainers = append(sneaky.Spec.EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "sneaky", Image: "busybox"}})
		if _, err := pods.Update(ctx, sneaky, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "pod updates may not change fields") {
			t.Errorf("adding an ephemeral container through the pod itself: %v", err)
		}
		c.applyRefused(`
apiVersion: v1
kind: Pod
metadata: {name: born-debugged}
spec:
  containers: [{name: c, image: busybox}]
  ephemeralContainers: [{name: d, image: busybox}]
`, "spec.ephemeralContainers: Forbidden: cannot be set on create")
	})
}
