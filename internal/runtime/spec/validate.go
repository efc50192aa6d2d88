package spec

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// checkSupported refuses, with ErrUnsupported and the field path, the pod and
// container fields that would change the container's OCI spec but that
// peapod does not implement. Resource names and env sources are checked where
// they are used.
func checkSupported(pod *corev1.Pod, c *corev1.Container, path string) error {
	unsupported := func(field string) error { return fmt.Errorf("%s: %w", field, ErrUnsupported) }
	ps := &pod.Spec
	if ps.OS != nil && ps.OS.Name != corev1.Linux {
		return unsupported(fmt.Sprintf("spec.os.name %s", ps.OS.Name))
	}
	if err := checkPodResources(ps.Resources); err != nil {
		return err
	}
	if psc := ps.SecurityContext; psc != nil {
		if psc.WindowsOptions != nil {
			return unsupported("spec.securityContext.windowsOptions")
		}
		if err := checkAppArmor(psc.AppArmorProfile, "spec.securityContext.appArmorProfile"); err != nil {
			return err
		}
	}

	if len(c.VolumeDevices) > 0 {
		return unsupported(path + ".volumeDevices")
	}
	for i, vm := range c.VolumeMounts {
		fp := fmt.Sprintf("%s.volumeMounts[%d]", path, i)
		if vm.RecursiveReadOnly != nil && *vm.RecursiveReadOnly == corev1.RecursiveReadOnlyEnabled {
			return unsupported(fp + ".recursiveReadOnly")
		}
		if len(vm.BindMountOptions) > 0 {
			return unsupported(fp + ".bindMountOptions")
		}
	}
	if sc := c.SecurityContext; sc != nil {
		fp := path + ".securityContext"
		if sc.WindowsOptions != nil {
			return unsupported(fp + ".windowsOptions")
		}
		if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
			return unsupported(fmt.Sprintf("%s.procMount %s", fp, *sc.ProcMount))
		}
		if err := checkAppArmor(sc.AppArmorProfile, fp+".appArmorProfile"); err != nil {
			return err
		}
	}
	return nil
}

// checkAppArmor accepts only an Unconfined AppArmor profile: peapod applies
// no AppArmor profile.
func checkAppArmor(p *corev1.AppArmorProfile, fp string) error {
	if p == nil || p.Type == corev1.AppArmorProfileTypeUnconfined {
		return nil
	}
	return fmt.Errorf("%s.type %s: %w", fp, p.Type, ErrUnsupported)
}
