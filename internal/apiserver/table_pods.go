package apiserver

import (
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// podTable renders pods as kubectl does: NAME READY STATUS RESTARTS AGE,
// and (priority 1, shown by -o wide) IP NODE NOMINATED NODE READINESS GATES.
var podTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Ready", Type: "string", Description: "The aggregate readiness state of this pod for accepting traffic."},
		{Name: "Status", Type: "string", Description: "The aggregate status of the containers in this pod."},
		{Name: "Restarts", Type: "string", Description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."},
		ageColumn,
		{Name: "IP", Type: "string", Priority: 1, Description: "IP address allocated to the pod. Routable at least within the cluster."},
		{Name: "Node", Type: "string", Priority: 1, Description: "NodeName of the node the pod is bound to."},
		{Name: "Nominated Node", Type: "string", Priority: 1, Description: "nominatedNodeName is set when this pod preempts other pods on the node."},
		{Name: "Readiness Gates", Type: "string", Priority: 1, Description: "If specified, all readiness gates will be evaluated for pod readiness."},
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		pod := obj.(*corev1.Pod)
		s := PodPrintStatus(pod, now)
		return []interface{}{pod.Name, s.Ready, s.Status, s.Restarts, age(pod.CreationTimestamp, now),
			s.IP, s.Node, s.NominatedNode, s.ReadinessGates}
	},
}

// PodPrint is what kubectl shows for a pod.
type PodPrint struct {
	Ready, Status, Restarts                 string
	IP, Node, NominatedNode, ReadinessGates string
}

// PodPrintStatus computes a pod's table cells the way Kubernetes' printer
// does (reason, waiting/terminated reasons, Init:x/y, Completed,
// Terminating, restarts with the age of the last restart). Pure.
func PodPrintStatus(pod *corev1.Pod, now time.Time) PodPrint {
	restarts, sidecarRestarts := 0, 0
	total := len(pod.Spec.Containers)
	ready := 0
	var lastRestart, lastSidecarRestart time.Time
	reason := string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		reason = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			reason = corev1.PodReasonSchedulingGated
		}
	}
	inits := map[string]*corev1.Container{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		inits[c.Name] = c
		if isSidecar(c) {
			total++
		}
	}
	later := func(t *time.Time, st corev1.ContainerStatus) {
		if term := st.LastTerminationState.Terminated; term != nil && term.FinishedAt.After(*t) {
			*t = term.FinishedAt.Time
		}
	}
	initializing := false
	for i, st := range pod.Status.InitContainerStatuses {
		restarts += int(st.RestartCount)
		later(&lastRestart, st)
		if isSidecar(inits[st.Name]) {
			sidecarRestarts += int(st.RestartCount)
			later(&lastSidecarRestart, st)
		}
		switch {
		case st.State.Terminated != nil && st.State.Terminated.ExitCode == 0:
			continue
		case isSidecar(inits[st.Name]) && st.Started != nil && *st.Started:
			if st.Ready {
				ready++
			}
			continue
		case st.State.Terminated != nil:
			t := st.State.Terminated
			switch {
			case t.Reason != "":
				reason = "Init:" + t.Reason
			case t.Signal != 0:
				reason = fmt.Sprintf("Init:Signal:%d", t.Signal)
			default:
				reason = fmt.Sprintf("Init:ExitCode:%d", t.ExitCode)
			}
		case st.State.Waiting != nil && st.State.Waiting.Reason != "" && st.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + st.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		initializing = true
		break
	}
	if !initializing || conditionTrue(pod.Status.Conditions, corev1.PodInitialized) {
		restarts, lastRestart = sidecarRestarts, lastSidecarRestart
		hasRunning := false
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			st := pod.Status.ContainerStatuses[i]
			restarts += int(st.RestartCount)
			later(&lastRestart, st)
			switch {
			case st.State.Waiting != nil && st.State.Waiting.Reason != "":
				reason = st.State.Waiting.Reason
			case st.State.Terminated != nil && st.State.Terminated.Reason != "":
				reason = st.State.Terminated.Reason
			case st.State.Terminated != nil:
				if st.State.Terminated.Signal != 0 {
					reason = fmt.Sprintf("Signal:%d", st.State.Terminated.Signal)
				} else {
					reason = fmt.Sprintf("ExitCode:%d", st.State.Terminated.ExitCode)
				}
			case st.Ready && st.State.Running != nil:
				hasRunning = true
				ready++
			}
		}
		if reason == "Completed" && hasRunning {
			if conditionTrue(pod.Status.Conditions, corev1.PodReady) {
				reason = "Running"
			} else {
				reason = "NotReady"
			}
		}
	}
	terminal := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
	if pod.DeletionTimestamp != nil && pod.Status.Reason == "NodeLost" {
		reason = "Unknown"
	} else if pod.DeletionTimestamp != nil && !terminal {
		reason = "Terminating"
	}
	out := PodPrint{
		Ready:    fmt.Sprintf("%d/%d", ready, total),
		Status:   reason,
		Restarts: strconv.Itoa(restarts),
		IP:       "<none>", Node: "<none>", NominatedNode: "<none>", ReadinessGates: "<none>",
	}
	if restarts != 0 && !lastRestart.IsZero() {
		out.Restarts = fmt.Sprintf("%d (%s ago)", restarts, age(metav1.NewTime(lastRestart), now))
	}
	if len(pod.Status.PodIPs) > 0 && pod.Status.PodIPs[0].IP != "" {
		out.IP = pod.Status.PodIPs[0].IP
	} else if pod.Status.PodIP != "" {
		out.IP = pod.Status.PodIP
	}
	if pod.Spec.NodeName != "" {
		out.Node = pod.Spec.NodeName
	}
	if pod.Status.NominatedNodeName != "" {
		out.NominatedNode = pod.Status.NominatedNodeName
	}
	if n := len(pod.Spec.ReadinessGates); n > 0 {
		trueGates := 0
		for _, g := range pod.Spec.ReadinessGates {
			if conditionTrue(pod.Status.Conditions, g.ConditionType) {
				trueGates++
			}
		}
		out.ReadinessGates = fmt.Sprintf("%d/%d", trueGates, n)
	}
	return out
}

func isSidecar(c *corev1.Container) bool {
	return c != nil && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func conditionTrue(conds []corev1.PodCondition, t corev1.PodConditionType) bool {
	for _, c := range conds {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
