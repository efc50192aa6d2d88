package apiserver

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// accessModesString is kubectl's short form: RWO,ROX,RWX,RWOP, in that
// order, each once. Pure.
func accessModesString(modes []corev1.PersistentVolumeAccessMode) string {
	var out []string
	for _, m := range []struct {
		mode  corev1.PersistentVolumeAccessMode
		short string
	}{{corev1.ReadWriteOnce, "RWO"}, {corev1.ReadOnlyMany, "ROX"}, {corev1.ReadWriteMany, "RWX"}, {corev1.ReadWriteOncePod, "RWOP"}} {
		for _, have := range modes {
			if have == m.mode {
				out = append(out, m.short)
				break
			}
		}
	}
	return strings.Join(out, ",")
}

func unsetIfEmpty(s *string) string {
	if s == nil || *s == "" {
		return "<unset>"
	}
	return *s
}

// pvTable: NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM
// STORAGECLASS VOLUMEATTRIBUTESCLASS REASON AGE, wide adds VOLUMEMODE.
var pvTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Capacity", Type: "string", Description: "capacity is the description of the persistent volume's resources and capacity."},
		{Name: "Access Modes", Type: "string", Description: "accessModes contains all ways the volume can be mounted."},
		{Name: "Reclaim Policy", Type: "string", Description: "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."},
		{Name: "Status", Type: "string", Description: "phase indicates if a volume is available, bound to a claim, or released by a claim."},
		{Name: "Claim", Type: "string", Description: "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."},
		{Name: "StorageClass", Type: "string", Description: "storageClassName is the name of StorageClass to which this persistent volume belongs."},
		{Name: "VolumeAttributesClass", Type: "string", Description: "Name of VolumeAttributesClass to which this persistent volume belongs."},
		{Name: "Reason", Type: "string", Description: "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."},
		ageColumn,
		{Name: "VolumeMode", Type: "string", Priority: 1, Description: "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."},
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		pv := obj.(*corev1.PersistentVolume)
		claim := ""
		if cr := pv.Spec.ClaimRef; cr != nil {
			claim = cr.Namespace + "/" + cr.Name
		}
		capacity := ""
		if q, ok := pv.Spec.Capacity[corev1.ResourceStorage]; ok {
			capacity = q.String()
		}
		mode := "<unset>"
		if pv.Spec.VolumeMode != nil {
			mode = string(*pv.Spec.VolumeMode)
		}
		return []interface{}{pv.Name, capacity, accessModesString(pv.Spec.AccessModes), string(pv.Spec.PersistentVolumeReclaimPolicy),
			string(pv.Status.Phase), claim, pv.Spec.StorageClassName, unsetIfEmpty(pv.Spec.VolumeAttributesClassName), pv.Status.Reason,
			age(pv.CreationTimestamp, now), mode}
	},
}

// pvcTable: NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS
// VOLUMEATTRIBUTESCLASS AGE, wide adds VOLUMEMODE. Capacity and access
// modes are the bound volume's (status), empty until bound.
var pvcTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Status", Type: "string", Description: "phase represents the current phase of PersistentVolumeClaim."},
		{Name: "Volume", Type: "string", Description: "volumeName is the binding reference to the PersistentVolume backing this claim."},
		{Name: "Capacity", Type: "string", Description: "capacity represents the actual resources of the underlying volume."},
		{Name: "Access Modes", Type: "string", Description: "accessModes contains the actual access modes the volume backing the PVC has."},
		{Name: "StorageClass", Type: "string", Description: "storageClassName is the name of the StorageClass required by the claim."},
		{Name: "VolumeAttributesClass", Type: "string", Description: "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim."},
		ageColumn,
		{Name: "VolumeMode", Type: "string", Priority: 1, Description: "volumeMode defines what type of volume is required by the claim."},
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		c := obj.(*corev1.PersistentVolumeClaim)
		phase := string(c.Status.Phase)
		if c.DeletionTimestamp != nil {
			phase = "Terminating"
		}
		capacity := ""
		if q, ok := c.Status.Capacity[corev1.ResourceStorage]; ok && c.Spec.VolumeName != "" {
			capacity = q.String()
		}
		class := ""
		if c.Spec.StorageClassName != nil {
			class = *c.Spec.StorageClassName
		}
		mode := "<unset>"
		if c.Spec.VolumeMode != nil {
			mode = string(*c.Spec.VolumeMode)
		}
		return []interface{}{c.Name, phase, c.Spec.VolumeName, capacity, accessModesString(c.Status.AccessModes), class,
			unsetIfEmpty(c.Spec.VolumeAttributesClassName), age(c.CreationTimestamp, now), mode}
	},
}

// storageClassTable: NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE
// ALLOWVOLUMEEXPANSION AGE; the default class's name ends " (default)".
var storageClassTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Provisioner", Type: "string", Description: "provisioner indicates the type of the provisioner."},
		{Name: "ReclaimPolicy", Type: "string", Description: "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class."},
		{Name: "VolumeBindingMode", Type: "string", Description: "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."},
		{Name: "AllowVolumeExpansion", Type: "string", Description: "allowVolumeExpansion shows whether the storage class allow volume expand."},
		ageColumn,
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		sc := obj.(*storagev1.StorageClass)
		name := sc.Name
		if IsDefaultStorageClass(sc) {
			name += " (default)"
		}
		reclaim, mode := string(corev1.PersistentVolumeReclaimDelete), string(storagev1.VolumeBindingImmediate)
		if sc.ReclaimPolicy != nil {
			reclaim = string(*sc.ReclaimPolicy)
		}
		if sc.VolumeBindingMode != nil {
			mode = string(*sc.VolumeBindingMode)
		}
		expand := sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion
		return []interface{}{name, sc.Provisioner, reclaim, mode, expand, age(sc.CreationTimestamp, now)}
	},
}
