package apiserver

import (
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var supportedAccessModes = []corev1.PersistentVolumeAccessMode{
	corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod,
}

// validateAccessModes checks modes as Kubernetes does: known values, and
// ReadWriteOncePod alone. required gives the message of an empty list.
func validateAccessModes(modes []corev1.PersistentVolumeAccessMode, p *field.Path, required string) field.ErrorList {
	var errs field.ErrorList
	if len(modes) == 0 {
		return field.ErrorList{field.Required(p, required)}
	}
	for _, m := range modes {
		if !slices.Contains(supportedAccessModes, m) {
			errs = append(errs, field.NotSupported(p, m, supportedAccessModes))
		}
	}
	if slices.Contains(modes, corev1.ReadWriteOncePod) && len(modes) > 1 {
		errs = append(errs, field.Forbidden(p, "may not use ReadWriteOncePod with other access modes"))
	}
	return errs
}

func validateStorageClassName(name string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	return errs
}

// validateVolumeMode allows Filesystem; Block is refused as peapod has no
// block devices to give.
func validateVolumeMode(m *corev1.PersistentVolumeMode, p *field.Path) field.ErrorList {
	if m == nil {
		return nil
	}
	switch *m {
	case corev1.PersistentVolumeFilesystem:
		return nil
	case corev1.PersistentVolumeBlock:
		return field.ErrorList{field.Forbidden(p, "volumeMode Block is "+unsupportedMsg)}
	}
	return field.ErrorList{field.NotSupported(p, *m, []corev1.PersistentVolumeMode{corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem})}
}

func positiveQuantity(q resource.Quantity, p *field.Path) field.ErrorList {
	if q.Sign() <= 0 {
		return field.ErrorList{field.Invalid(p, q.String(), "must be greater than zero")}
	}
	return nil
}

// validateLocalPath checks a hostPath or local path: absolute for local,
// and never with a ".." element (Kubernetes' validatePathNoBacksteps).
func validateLocalPath(path string, p *field.Path, absolute bool) field.ErrorList {
	if path == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	var errs field.ErrorList
	if absolute && !filepath.IsAbs(path) {
		errs = append(errs, field.Invalid(p, path, "must be an absolute path"))
	}
	for _, part := range strings.Split(filepath.ToSlash(path), "/") {
		if part == ".." {
			errs = append(errs, field.Invalid(p, path, "must not contain '..'"))
			break
		}
	}
	return errs
}

// ValidatePersistentVolume returns every failure of a PersistentVolume,
// with Kubernetes' messages. Only hostPath and local volumes are
// accepted: they are what a peapod node can mount. Pure.
func ValidatePersistentVolume(pv *corev1.PersistentVolume) field.ErrorList {
	sp := field.NewPath("spec")
	s := &pv.Spec
	errs := validateAccessModes(s.AccessModes, sp.Child("accessModes"), "")
	if len(s.Capacity) == 0 {
		errs = append(errs, field.Required(sp.Child("capacity"), ""))
	} else if q, ok := s.Capacity[corev1.ResourceStorage]; !ok || len(s.Capacity) > 1 {
		errs = append(errs, field.NotSupported(sp.Child("capacity"), s.Capacity, []corev1.ResourceName{corev1.ResourceStorage}))
	} else {
		errs = append(errs, positiveQuantity(q, sp.Child("capacity").Key(string(corev1.ResourceStorage)))...)
	}
	if s.StorageClassName != "" {
		errs = append(errs, validateStorageClassName(s.StorageClassName, sp.Child("storageClassName"))...)
	}
	switch s.PersistentVolumeReclaimPolicy {
	case corev1.PersistentVolumeReclaimRetain, corev1.PersistentVolumeReclaimDelete:
	case corev1.PersistentVolumeReclaimRecycle:
		errs = append(errs, field.Forbidden(sp.Child("persistentVolumeReclaimPolicy"), "Recycle is "+unsupportedMsg+" (deprecated in Kubernetes)"))
	default:
		errs = append(errs, field.NotSupported(sp.Child("persistentVolumeReclaimPolicy"), s.PersistentVolumeReclaimPolicy,
			[]corev1.PersistentVolumeReclaimPolicy{corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRecycle, corev1.PersistentVolumeReclaimRetain}))
	}
	errs = append(errs, validateVolumeMode(s.VolumeMode, sp.Child("volumeMode"))...)
	if na := s.NodeAffinity; na != nil {
		if na.Required == nil {
			errs = append(errs, field.Required(sp.Child("nodeAffinity", "required"), ""))
		} else {
			errs = append(errs, validateNodeSelector(na.Required, sp.Child("nodeAffinity", "required"))...)
		}
	}
	vs := s.PersistentVolumeSource
	switch {
	case vs.HostPath != nil && vs.Local != nil:
		errs = append(errs, field.Forbidden(sp.Child("local"), "may not specify more than 1 volume type"))
	case vs.HostPath != nil:
		errs = append(errs, validateLocalPath(vs.HostPath.Path, sp.Child("hostPath", "path"), false)...)
		if t := vs.HostPath.Type; t != nil && !slices.Contains(hostPathTypes, *t) {
			errs = append(errs, field.NotSupported(sp.Child("hostPath", "type"), *t, hostPathTypes))
		}
	case vs.Local != nil:
		errs = append(errs, validateLocalPath(vs.Local.Path, sp.Child("local", "path"), true)...)
		if s.NodeAffinity == nil {
			errs = append(errs, field.Required(sp.Child("nodeAffinity"), "Local volume requires node affinity"))
		}
	default:
		if apiEmptyVolumeSource(vs) {
			errs = append(errs, field.Required(sp, "must specify a volume type"))
		} else {
			errs = append(errs, field.Forbidden(sp, "volume type is "+unsupportedMsg+" (supported: hostPath, local)"))
		}
	}
	if cr := s.ClaimRef; cr != nil {
		if cr.Name == "" {
			errs = append(errs, field.Required(sp.Child("claimRef", "name"), ""))
		}
		if cr.Namespace == "" {
			errs = append(errs, field.Required(sp.Child("claimRef", "namespace"), ""))
		}
	}
	return errs
}

var hostPathTypes = []corev1.HostPathType{corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory,
	corev1.HostPathFileOrCreate, corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev}

func apiEmptyVolumeSource(vs corev1.PersistentVolumeSource) bool {
	return vs == (corev1.PersistentVolumeSource{})
}

// ValidatePersistentVolumeUpdate adds Kubernetes' immutability rules to
// ValidatePersistentVolume: the volume source, volume mode and node
// affinity cannot change. Pure.
func ValidatePersistentVolumeUpdate(pv, old *corev1.PersistentVolume) field.ErrorList {
	errs := ValidatePersistentVolume(pv)
	sp := field.NewPath("spec")
	if !apiEqual(pv.Spec.PersistentVolumeSource, old.Spec.PersistentVolumeSource) {
		errs = append(errs, field.Forbidden(sp.Child("persistentvolumesource"), "spec.persistentvolumesource is forbidden once a PV has been created"))
	}
	if !apiEqual(pv.Spec.VolumeMode, old.Spec.VolumeMode) {
		errs = append(errs, field.Invalid(sp.Child("volumeMode"), pv.Spec.VolumeMode, "field is immutable"))
	}
	if old.Spec.NodeAffinity != nil && !apiEqual(pv.Spec.NodeAffinity, old.Spec.NodeAffinity) {
		errs = append(errs, field.Invalid(sp.Child("nodeAffinity"), "nil", "field is immutable once set"))
	}
	return errs
}

// ValidatePersistentVolumeClaimSpec returns every failure of a claim's
// spec (also a StatefulSet's volumeClaimTemplates'), with Kubernetes'
// messages. Pure.
func ValidatePersistentVolumeClaimSpec(s *corev1.PersistentVolumeClaimSpec, sp *field.Path) field.ErrorList {
	errs := validateAccessModes(s.AccessModes, sp.Child("accessModes"), "at least 1 access mode is required")
	if s.Selector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(s.Selector, metav1validation.LabelSelectorValidationOptions{}, sp.Child("selector"))...)
	}
	if q, ok := s.Resources.Requests[corev1.ResourceStorage]; !ok {
		errs = append(errs, field.Required(sp.Child("resources").Key(string(corev1.ResourceStorage)), ""))
	} else {
		errs = append(errs, positiveQuantity(q, sp.Child("resources", "requests").Key(string(corev1.ResourceStorage)))...)
	}
	if s.StorageClassName != nil && *s.StorageClassName != "" {
		errs = append(errs, validateStorageClassName(*s.StorageClassName, sp.Child("storageClassName"))...)
	}
	errs = append(errs, validateVolumeMode(s.VolumeMode, sp.Child("volumeMode"))...)
	if s.DataSource != nil || s.DataSourceRef != nil {
		errs = append(errs, field.Forbidden(sp.Child("dataSource"), unsupportedMsg))
	}
	return errs
}

// ValidatePersistentVolumeClaimUpdate: the spec is immutable except that
// volumeName may be set once (binding) and storageClassName may go from
// unset to a class. peapod's local volumes cannot grow, so it does not
// take resize requests (Kubernetes refuses them too unless the class
// allows expansion). Pure.
func ValidatePersistentVolumeClaimUpdate(c, old *corev1.PersistentVolumeClaim) field.ErrorList {
	errs := ValidatePersistentVolumeClaimSpec(&c.Spec, field.NewPath("spec"))
	a, b := c.Spec.DeepCopy(), old.Spec.DeepCopy()
	if b.VolumeName == "" {
		b.VolumeName = a.VolumeName
	}
	if b.StorageClassName == nil {
		b.StorageClassName = a.StorageClassName
	}
	return append(errs, immutableExcept(a, b, field.NewPath("spec"),
		"spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims")...)
}

// ValidateStorageClass returns every failure of a StorageClass. Pure.
func ValidateStorageClass(sc *storagev1.StorageClass) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("provisioner")
	if sc.Provisioner == "" {
		errs = append(errs, field.Required(p, ""))
	} else {
		for _, msg := range validation.IsQualifiedName(strings.ToLower(sc.Provisioner)) {
			errs = append(errs, field.Invalid(p, sc.Provisioner, msg))
		}
	}
	if sc.ReclaimPolicy != nil {
		switch *sc.ReclaimPolicy {
		case corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRetain:
		default:
			errs = append(errs, field.NotSupported(field.NewPath("reclaimPolicy"), *sc.ReclaimPolicy,
				[]corev1.PersistentVolumeReclaimPolicy{corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRetain}))
		}
	}
	if m := sc.VolumeBindingMode; m != nil && *m != storagev1.VolumeBindingImmediate && *m != storagev1.VolumeBindingWaitForFirstConsumer {
		errs = append(errs, field.NotSupported(field.NewPath("volumeBindingMode"), *m,
			[]storagev1.VolumeBindingMode{storagev1.VolumeBindingImmediate, storagev1.VolumeBindingWaitForFirstConsumer}))
	}
	size := 0
	for k, v := range sc.Parameters {
		size += len(k) + len(v)
	}
	if size > 256*1024 {
		errs = append(errs, field.TooLong(field.NewPath("parameters"), "", 256*1024))
	}
	return errs
}

// ValidateStorageClassUpdate: parameters, provisioner, reclaimPolicy and
// volumeBindingMode are immutable, as in Kubernetes. Pure.
func ValidateStorageClassUpdate(sc, old *storagev1.StorageClass) field.ErrorList {
	errs := ValidateStorageClass(sc)
	if !apiEqual(sc.Parameters, old.Parameters) {
		errs = append(errs, field.Forbidden(field.NewPath("parameters"), "updates to parameters are forbidden."))
	}
	if sc.Provisioner != old.Provisioner {
		errs = append(errs, field.Forbidden(field.NewPath("provisioner"), "updates to provisioner are forbidden."))
	}
	if !apiEqual(sc.ReclaimPolicy, old.ReclaimPolicy) {
		errs = append(errs, field.Forbidden(field.NewPath("reclaimPolicy"), "updates to reclaimPolicy are forbidden."))
	}
	if !apiEqual(sc.VolumeBindingMode, old.VolumeBindingMode) {
		errs = append(errs, field.Invalid(field.NewPath("volumeBindingMode"), sc.VolumeBindingMode, "field is immutable"))
	}
	return errs
}
