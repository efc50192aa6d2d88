package apiserver

import (
	"context"
	"sort"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Finalizers the StorageObjectInUseProtection admission plugin puts on
// every new claim and volume; the PV controller removes them once the
// object is no longer in use.
const (
	PVCProtectionFinalizer = "kubernetes.io/pvc-protection"
	PVProtectionFinalizer  = "kubernetes.io/pv-protection"
	// IsDefaultClassAnnotation marks the StorageClass that claims without
	// a class get (the DefaultStorageClass admission plugin).
	IsDefaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"
)

func storageGVR(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: resource}
}

// storageResources registers core/v1 PersistentVolumes and
// PersistentVolumeClaims and storage.k8s.io/v1 StorageClasses, defaulted
// and validated as kube-apiserver does. Binding and provisioning are the
// PV controller's (internal/controller/persistentvolume).
func storageResources() []*Resource {
	return []*Resource{
		{
			GVR: core("persistentvolumes"), Kind: "PersistentVolume", Singular: "persistentvolume", ShortNames: []string{"pv"},
			New:     func() runtime.Object { return &corev1.PersistentVolume{} },
			NewList: func() runtime.Object { return &corev1.PersistentVolumeList{} },
			Status:  true, Table: pvTable,
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) {
					pv := obj.(*corev1.PersistentVolume)
					pv.Status = corev1.PersistentVolumeStatus{Phase: corev1.VolumePending}
					DefaultPersistentVolume(pv)
					addFinalizer(&pv.ObjectMeta, PVProtectionFinalizer)
				},
				PrepareForUpdate: func(obj, _ runtime.Object) { DefaultPersistentVolume(obj.(*corev1.PersistentVolume)) },
				Validate: func(obj runtime.Object) field.ErrorList {
					return ValidatePersistentVolume(obj.(*corev1.PersistentVolume))
				},
				ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
					return ValidatePersistentVolumeUpdate(obj.(*corev1.PersistentVolume), old.(*corev1.PersistentVolume))
				},
			},
			Fields: func(obj runtime.Object) fields.Set {
				return fields.Set{"status.phase": string(obj.(*corev1.PersistentVolume).Status.Phase)}
			},
		},
		{
			GVR: core("persistentvolumeclaims"), Kind: "PersistentVolumeClaim", Singular: "persistentvolumeclaim", Namespaced: true,
			ShortNames: []string{"pvc"},
			New:        func() runtime.Object { return &corev1.PersistentVolumeClaim{} },
			NewList:    func() runtime.Object { return &corev1.PersistentVolumeClaimList{} },
			Status:     true, Table: pvcTable,
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) {
					c := obj.(*corev1.PersistentVolumeClaim)
					c.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
					DefaultPersistentVolumeClaim(c)
					addFinalizer(&c.ObjectMeta, PVCProtectionFinalizer)
				},
				PrepareForUpdate: func(obj, _ runtime.Object) { DefaultPersistentVolumeClaim(obj.(*corev1.PersistentVolumeClaim)) },
				Validate: func(obj runtime.Object) field.ErrorList {
					return ValidatePersistentVolumeClaimSpec(&obj.(*corev1.PersistentVolumeClaim).Spec, field.NewPath("spec"))
				},
				ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
					return ValidatePersistentVolumeClaimUpdate(obj.(*corev1.PersistentVolumeClaim), old.(*corev1.PersistentVolumeClaim))
				},
			},
			Allocate: admitDefaultStorageClass,
		},
		{
			GVR: storageGVR("storageclasses"), Kind: "StorageClass", Singular: "storageclass", ShortNames: []string{"sc"},
			New:     func() runtime.Object { return &storagev1.StorageClass{} },
			NewList: func() runtime.Object { return &storagev1.StorageClassList{} },
			Table:   storageClassTable,
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) { DefaultStorageClass(obj.(*storagev1.StorageClass)) },
				PrepareForUpdate: func(obj, _ runtime.Object) { DefaultStorageClass(obj.(*storagev1.StorageClass)) },
				Validate:         func(obj runtime.Object) field.ErrorList { return ValidateStorageClass(obj.(*storagev1.StorageClass)) },
				ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
					return ValidateStorageClassUpdate(obj.(*storagev1.StorageClass), old.(*storagev1.StorageClass))
				},
			},
		},
	}
}

func addFinalizer(m *metav1.ObjectMeta, f string) {
	for _, have := range m.Finalizers {
		if have == f {
			return
		}
	}
	m.Finalizers = append(m.Finalizers, f)
}

// DefaultPersistentVolume applies core/v1 defaults: reclaim policy Retain
// and volume mode Filesystem. Pure.
func DefaultPersistentVolume(pv *corev1.PersistentVolume) {
	if pv.Spec.PersistentVolumeReclaimPolicy == "" {
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	}
	if pv.Spec.VolumeMode == nil {
		m := corev1.PersistentVolumeFilesystem
		pv.Spec.VolumeMode = &m
	}
}

// DefaultPersistentVolumeClaim applies core/v1 defaults: volume mode
// Filesystem. Pure.
func DefaultPersistentVolumeClaim(c *corev1.PersistentVolumeClaim) {
	if c.Spec.VolumeMode == nil {
		m := corev1.PersistentVolumeFilesystem
		c.Spec.VolumeMode = &m
	}
}

// DefaultStorageClass applies storage/v1 defaults: reclaim policy Delete
// and binding mode Immediate. Pure.
func DefaultStorageClass(sc *storagev1.StorageClass) {
	if sc.ReclaimPolicy == nil {
		p := corev1.PersistentVolumeReclaimDelete
		sc.ReclaimPolicy = &p
	}
	if sc.VolumeBindingMode == nil {
		m := storagev1.VolumeBindingImmediate
		sc.VolumeBindingMode = &m
	}
}

// admitDefaultStorageClass is the DefaultStorageClass admission plugin: a
// new claim that names no class (storageClassName unset, not "") gets the
// class annotated as the default, the newest when several are. No
// default class leaves the claim as it is.
func admitDefaultStorageClass(ctx context.Context, a *api, obj, old runtime.Object) (func(), func(), error) {
	c := obj.(*corev1.PersistentVolumeClaim)
	if old != nil || c.Spec.StorageClassName != nil {
		return nil, nil, nil
	}
	res := a.resourceFor("storage.k8s.io", "v1", "storageclasses")
	lr, err := a.listObjects(ctx, res, "", selector{labels: labels.Everything(), fields: fields.Everything()}, 0, "", "", "")
	if err != nil {
		return nil, nil, err
	}
	var defaults []*storagev1.StorageClass
	for _, o := range lr.items {
		if sc, ok := o.(*storagev1.StorageClass); ok && IsDefaultStorageClass(sc) {
			defaults = append(defaults, sc)
		}
	}
	if len(defaults) == 0 {
		return nil, nil, nil
	}
	sort.Slice(defaults, func(i, j int) bool {
		ti, tj := defaults[i].CreationTimestamp, defaults[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return tj.Before(&ti)
		}
		return defaults[i].Name < defaults[j].Name
	})
	name := defaults[0].Name
	c.Spec.StorageClassName = &name
	return nil, nil, nil
}

// IsDefaultStorageClass reports whether sc carries the default-class
// annotation set to "true". Pure.
func IsDefaultStorageClass(sc *storagev1.StorageClass) bool {
	return sc.Annotations[IsDefaultClassAnnotation] == "true"
}

// immutableExcept compares a and b (already stripped of what may change)
// and returns msg as a Forbidden error on p when they differ.
func immutableExcept(a, b any, p *field.Path, msg string) field.ErrorList {
	if apiEqual(a, b) {
		return nil
	}
	return field.ErrorList{field.Forbidden(p, msg)}
}

func apiEqual(a, b any) bool { return apiequality.Semantic.DeepEqual(a, b) }
