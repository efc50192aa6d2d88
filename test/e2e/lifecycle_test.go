package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCrashingContainerBacksOff(t *testing.T) {
	c := startCluster(t)
	c.must("run", "crash", "--image=busybox", "--restart=Always", "--", "sh", "-c", "echo dying; exit 3")
	p := c.waitPod("default", "crash", 60*time.Second, "CrashLoopBackOff with 2 restarts", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount >= 2 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "CrashLoopBackOff"
	})
	cs := p.Status.ContainerStatuses[0]
	if lt := cs.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 3 || lt.Reason != "Error" {
		t.Errorf("lastState = %+v, want terminated with exit 3, reason Error", cs.LastTerminationState)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase = %s, want Running while it restarts", p.Status.Phase)
	}
	if out := c.must("get", "pod", "crash"); !strings.Contains(out, "CrashLoopBackOff") {
		t.Errorf("kubectl get pod shows:\n%s", out)
	}
	if out := c.must("get", "events", "--field-selector", "involvedObject.name=crash"); !strings.Contains(out, "BackOff") {
		t.Errorf("no BackOff event:\n%s", out)
	}
}

func TestRestartPolicyNeverEndsSucceededOrFailed(t *testing.T) {
	c := startCluster(t)
	c.must("run", "ok", "--image=busybox", "--restart=Never", "--", "true")
	c.must("run", "bad", "--image=busybox", "--restart=Never", "--", "sh", "-c", "exit 5")
	c.waitPod("default", "ok", 30*time.Second, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	p := c.waitPod("default", "bad", 30*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 5 {
		t.Errorf("bad pod's container state = %+v, want exit code 5", p.Status.ContainerStatuses[0].State)
	}
	out := c.must("get", "pods")
	for _, want := range []string{"Completed", "Error"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get pods lacks %q:\n%s", want, out)
		}
	}
	// A finished pod gives its sandbox back.
	c.eventually(20*time.Second, func() error {
		if entries, _ := os.ReadDir(filepath.Join(c.dir, "pods")); len(entries) != 0 {
			return fmt.Errorf("%d sandboxes remain for finished pods", len(entries))
		}
		return nil
	})
}

func TestInitContainersRunFirstInOrder(t *testing.T) {
	c := startCluster(t)
	out := t.TempDir()
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: inits}
spec:
  volumes: [{name: out, hostPath: {path: %s, type: Directory}}]
  initContainers:
  - {name: first, image: busybox, command: [sh, -c, "echo first >> /out/order"], volumeMounts: [{name: out, mountPath: /out}]}
  - {name: second, image: busybox, command: [sh, -c, "sleep 1; echo second >> /out/order"], volumeMounts: [{name: out, mountPath: /out}]}
  containers:
  - {name: main, image: busybox, command: [sh, -c, "echo main >> /out/order; exec sleep 3600"], volumeMounts: [{name: out, mountPath: /out}]}
`, out))
	p := c.waitPod("default", "inits", 60*time.Second, "Running", running)
	data, _ := os.ReadFile(filepath.Join(out, "order"))
	if got := strings.Fields(string(data)); strings.Join(got, ",") != "first,second,main" {
		t.Errorf("order = %v, want first, second, main", got)
	}
	for _, cs := range p.Status.InitContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.Reason != "Completed" {
			t.Errorf("init container %s: %+v", cs.Name, cs.State)
		}
	}
}

func TestProbes(t *testing.T) {
	c := startCluster(t)
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "touch /tmp/healthy; sleep 3; rm /tmp/healthy; exec sleep 3600"]
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {name: toggle}
spec:
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "mkdir -p /www; httpd -p 80 -h /www; while true; do touch /www/ready; sleep 4; rm -f /www/ready; sleep 4; done"]
    readinessProbe:
      httpGet: {path: /ready, port: 80}
      periodSeconds: 1
      failureThreshold: 1
`)
	c.waitPod("default", "live", 60*time.Second, "a restart by the liveness probe", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	if out := c.must("get", "events", "--field-selector", "involvedObject.name=live"); !strings.Contains(out, "Unhealthy") || !strings.Contains(out, "failed liveness probe") {
		t.Errorf("events lack Unhealthy / Killing for the liveness probe:\n%s", out)
	}
	c.waitPod("default", "toggle", 30*time.Second, "Ready", ready)
	c.waitPod("default", "toggle", 30*time.Second, "not Ready", func(p *corev1.Pod) bool { return !ready(p) && running(p) })
	c.waitPod("default", "toggle", 30*time.Second, "Ready again", ready)
}

func TestPreStopRunsBeforeSIGTERM(t *testing.T) {
	c := startCluster(t)
	out := t.TempDir()
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: stopper}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{name: out, hostPath: {path: %s, type: Directory}}]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "trap 'echo sigterm >> /out/log; exit 0' TERM; while true; do sleep 0.1; done"]
    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle:
      preStop:
        exec: {command: [sh, -c, "echo prestop >> /out/log"]}
`, out))
	c.waitPod("default", "stopper", 60*time.Second, "Running", running)
	c.must("delete", "pod", "stopper", "--wait=true", "--timeout=60s")
	data, _ := os.ReadFile(filepath.Join(out, "log"))
	if got := strings.Fields(string(data)); strings.Join(got, ",") != "prestop,sigterm" {
		t.Errorf("log = %q, want prestop then sigterm", got)
	}
}

func TestRuntimeClassSelectsTheOCIRuntime(t *testing.T) {
	c := startCluster(t)
	c.apply(`
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: runc}
handler: runc
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: crun}
handler: crun
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: nonesuch}
handler: nonesuch
`)
	for _, rc := range []string{"runc", "crun"} {
		c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: on-%s}
spec:
  runtimeClassName: %s
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`, rc, rc))
	}
	for _, rc := range []string{"runc", "crun"} {
		p := c.waitPod("default", "on-"+rc, 60*time.Second, "Running", running)
		if id := p.Status.ContainerStatuses[0].ContainerID; !strings.HasPrefix(id, rc+"://") {
			t.Errorf("pod on %s: containerID %q", rc, id)
		}
	}
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: on-nonesuch}
spec:
  runtimeClassName: nonesuch
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`)
	c.eventually(30*time.Second, func() error {
		evs, err := c.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=on-nonesuch"})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedCreatePodSandBox" && strings.Contains(e.Message, "nonesuch") {
				return nil
			}
		}
		return fmt.Errorf("no FailedCreatePodSandBox event naming the handler: %+v", evs.Items)
	})
}
