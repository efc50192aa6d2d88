package apiserver

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// The workload tables carry the columns kubectl shows against a real
// cluster; -o wide adds the priority-1 ones.
var (
	containersColumn = metav1.TableColumnDefinition{Name: "Containers", Type: "string", Priority: 1, Description: "Names of each container in the template."}
	imagesColumn     = metav1.TableColumnDefinition{Name: "Images", Type: "string", Priority: 1, Description: "Images referenced by each container in the template."}
	selectorColumn   = metav1.TableColumnDefinition{Name: "Selector", Type: "string", Priority: 1, Description: "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."}
	desiredColumns   = []metav1.TableColumnDefinition{
		{Name: "Desired", Type: "integer", Description: "Replicas is the number of desired replicas."},
		{Name: "Current", Type: "integer", Description: "Replicas is the most recently observed number of replicas."},
		{Name: "Ready", Type: "integer", Description: "The number of ready replicas for this replica set."},
	}
)

// deploymentTable: NAME READY UP-TO-DATE AVAILABLE AGE, wide adds
// CONTAINERS IMAGES SELECTOR.
var deploymentTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
		{Name: "Up-to-date", Type: "string", Description: "Total number of non-terminated pods targeted by this deployment that have the desired template spec."},
		{Name: "Available", Type: "string", Description: "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."},
		ageColumn, containersColumn, imagesColumn, selectorColumn,
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		d := obj.(*appsv1.Deployment)
		names, images := containerSummary(&d.Spec.Template.Spec)
		return []interface{}{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, valueOr32(d.Spec.Replicas, 1)),
			int64(d.Status.UpdatedReplicas), int64(d.Status.AvailableReplicas), age(d.CreationTimestamp, now),
			names, images, selectorString(d.Spec.Selector)}
	},
}

// replicaSetTable: NAME DESIRED CURRENT READY AGE, wide adds CONTAINERS
// IMAGES SELECTOR.
var replicaSetTable = funcTable{
	cols: append(append([]metav1.TableColumnDefinition{nameColumn}, desiredColumns...), ageColumn, containersColumn, imagesColumn, selectorColumn),
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		rs := obj.(*appsv1.ReplicaSet)
		names, images := containerSummary(&rs.Spec.Template.Spec)
		return []interface{}{rs.Name, int64(valueOr32(rs.Spec.Replicas, 1)), int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas),
			age(rs.CreationTimestamp, now), names, images, selectorString(rs.Spec.Selector)}
	},
}

// replicationControllerTable: as ReplicaSets, with the map selector.
var replicationControllerTable = funcTable{
	cols: replicaSetTable.cols,
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		rc := obj.(*corev1.ReplicationController)
		names, images := "", ""
		if rc.Spec.Template != nil {
			names, images = containerSummary(&rc.Spec.Template.Spec)
		}
		return []interface{}{rc.Name, int64(valueOr32(rc.Spec.Replicas, 1)), int64(rc.Status.Replicas), int64(rc.Status.ReadyReplicas),
			age(rc.CreationTimestamp, now), names, images, labels.FormatLabels(rc.Spec.Selector)}
	},
}

// statefulSetTable: NAME READY AGE, wide adds CONTAINERS IMAGES.
var statefulSetTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
		ageColumn, containersColumn, imagesColumn,
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		s := obj.(*appsv1.StatefulSet)
		names, images := containerSummary(&s.Spec.Template.Spec)
		return []interface{}{s.Name, fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, valueOr32(s.Spec.Replicas, 1)),
			age(s.CreationTimestamp, now), names, images}
	},
}

// containerSummary joins a template's container names and images with
// commas, as kubectl's wide output does.
func containerSummary(s *corev1.PodSpec) (names, images string) {
	var n, i []string
	for _, c := range s.Containers {
		n = append(n, c.Name)
		i = append(i, c.Image)
	}
	return strings.Join(n, ","), strings.Join(i, ",")
}
