package apiserver

import (
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// nodeTable: NAME STATUS ROLES AGE VERSION, wide adds INTERNAL-IP
// EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME.
var nodeTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Status", Type: "string", Description: "The status of the node"},
		{Name: "Roles", Type: "string", Description: "The roles of the node"},
		ageColumn,
		{Name: "Version", Type: "string", Description: "Kubelet Version reported by the node."},
		{Name: "Internal-IP", Type: "string", Priority: 1, Description: "List of internal IPs."},
		{Name: "External-IP", Type: "string", Priority: 1, Description: "List of external IPs."},
		{Name: "OS-Image", Type: "string", Priority: 1, Description: "OS Image reported by the node."},
		{Name: "Kernel-Version", Type: "string", Priority: 1, Description: "Kernel Version reported by the node."},
		{Name: "Container-Runtime", Type: "string", Priority: 1, Description: "Container Runtime Version reported by the node."},
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		n := obj.(*corev1.Node)
		return []interface{}{n.Name, NodeStatusString(n), nodeRoles(n), age(n.CreationTimestamp, now), n.Status.NodeInfo.KubeletVersion,
			nodeAddress(n, corev1.NodeInternalIP), nodeAddress(n, corev1.NodeExternalIP),
			orNone(n.Status.NodeInfo.OSImage), orNone(n.Status.NodeInfo.KernelVersion), orNone(n.Status.NodeInfo.ContainerRuntimeVersion)}
	},
}

// NodeStatusString is kubectl's node STATUS: Ready, NotReady or Unknown,
// plus ",SchedulingDisabled" when cordoned. Pure.
func NodeStatusString(n *corev1.Node) string {
	status := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				status = "Ready"
			} else {
				status = "NotReady"
			}
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	return status
}

func nodeRoles(n *corev1.Node) string {
	var roles []string
	for k, v := range n.Labels {
		switch {
		case strings.HasPrefix(k, "node-role.kubernetes.io/"):
			if r := strings.TrimPrefix(k, "node-role.kubernetes.io/"); r != "" {
				roles = append(roles, r)
			}
		case k == "kubernetes.io/role" && v != "":
			roles = append(roles, v)
		}
	}
	if len(roles) == 0 {
		return "<none>"
	}
	sort.Strings(roles)
	return strings.Join(roles, ",")
}

func nodeAddress(n *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// namespaceTable: NAME STATUS AGE.
var namespaceTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Status", Type: "string", Description: "The status of the namespace"},
		ageColumn,
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		ns := obj.(*corev1.Namespace)
		return []interface{}{ns.Name, string(ns.Status.Phase), age(ns.CreationTimestamp, now)}
	},
}

// eventTable: LAST SEEN TYPE REASON OBJECT MESSAGE.
var eventTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		{Name: "Last Seen", Type: "string"},
		{Name: "Type", Type: "string"},
		{Name: "Reason", Type: "string"},
		{Name: "Object", Type: "string"},
		{Name: "Message", Type: "string"},
		{Name: "Name", Type: "string", Format: "name", Priority: 1},
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		e := obj.(*corev1.Event)
		last := e.LastTimestamp
		if last.IsZero() {
			last = metav1.NewTime(e.EventTime.Time)
		}
		if last.IsZero() {
			last = e.CreationTimestamp
		}
		o := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
		return []interface{}{age(last, now), e.Type, e.Reason, o, strings.TrimSpace(e.Message), e.Name}
	},
}

// configMapTable: NAME DATA AGE; secretTable: NAME TYPE DATA AGE;
// serviceAccountTable: NAME SECRETS AGE.
var configMapTable = funcTable{
	cols: []metav1.TableColumnDefinition{nameColumn, {Name: "Data", Type: "integer"}, ageColumn},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		c := obj.(*corev1.ConfigMap)
		return []interface{}{c.Name, int64(len(c.Data) + len(c.BinaryData)), age(c.CreationTimestamp, now)}
	},
}

var secretTable = funcTable{
	cols: []metav1.TableColumnDefinition{nameColumn, {Name: "Type", Type: "string"}, {Name: "Data", Type: "integer"}, ageColumn},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		s := obj.(*corev1.Secret)
		return []interface{}{s.Name, string(s.Type), int64(len(s.Data)), age(s.CreationTimestamp, now)}
	},
}

var serviceAccountTable = funcTable{
	cols: []metav1.TableColumnDefinition{nameColumn, {Name: "Secrets", Type: "string"}, ageColumn},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		s := obj.(*corev1.ServiceAccount)
		return []interface{}{s.Name, int64(len(s.Secrets)), age(s.CreationTimestamp, now)}
	},
}
