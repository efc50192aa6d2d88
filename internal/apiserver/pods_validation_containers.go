package apiserver

import (
	"path"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateMountPaths checks a container's volumeMounts as kube-apiserver's
// ValidateVolumeMounts does for subPath, subPathExpr and mountPropagation.
// The field paths are Kubernetes' own, which name these three fields
// under volumeMounts without the mount's index. Pure.
func validateMountPaths(p *field.Path, c *corev1.Container) field.ErrorList {
	var errs field.ErrorList
	mp := p.Child("volumeMounts")
	for i, m := range c.VolumeMounts {
		if m.SubPath != "" {
			errs = append(errs, validateLocalDescendingPath(m.SubPath, mp.Child("subPath"))...)
		}
		if m.SubPathExpr != "" {
			if m.SubPath != "" {
				errs = append(errs, field.Invalid(mp.Index(i).Child("subPathExpr"), m.SubPathExpr, "subPathExpr and subPath are mutually exclusive"))
			}
			errs = append(errs, validateLocalDescendingPath(m.SubPathExpr, mp.Child("subPathExpr"))...)
		}
		if m.MountPropagation != nil {
			errs = append(errs, validateMountPropagation(*m.MountPropagation, c, mp.Child("mountPropagation"))...)
		}
	}
	return errs
}

// validateLocalDescendingPath refuses an absolute path or one with a ".."
// element, Kubernetes' rule for subPath, subPathExpr and similar paths.
func validateLocalDescendingPath(p string, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if path.IsAbs(p) {
		errs = append(errs, field.Invalid(fld, p, "must be a relative path"))
	}
	for _, item := range strings.Split(filepath.ToSlash(p), "/") {
		if item == ".." {
			errs = append(errs, field.Invalid(fld, p, "must not contain '..'"))
			break
		}
	}
	return errs
}

var mountPropagationModes = []string{
	string(corev1.MountPropagationBidirectional), string(corev1.MountPropagationHostToContainer), string(corev1.MountPropagationNone),
}

func validateMountPropagation(mode corev1.MountPropagationMode, c *corev1.Container, fld *field.Path) field.ErrorList {
	if !sets.New(mountPropagationModes...).Has(string(mode)) {
		return field.ErrorList{field.NotSupported(fld, mode, mountPropagationModes)}
	}
	privileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
	if mode == corev1.MountPropagationBidirectional && !privileged {
		return field.ErrorList{field.Forbidden(fld, "Bidirectional mount propagation is available only to privileged containers")}
	}
	return nil
}

// linuxStopSignals are the signals a container's lifecycle.stopSignal may
// name on Linux, kube-apiserver's list.
var linuxStopSignals = func() []string {
	names := []string{
		"SIGABRT", "SIGALRM", "SIGBUS", "SIGCHLD", "SIGCLD", "SIGCONT", "SIGFPE", "SIGHUP", "SIGILL", "SIGINT", "SIGIO", "SIGIOT",
		"SIGKILL", "SIGPIPE", "SIGPOLL", "SIGPROF", "SIGPWR", "SIGQUIT", "SIGSEGV", "SIGSTKFLT", "SIGSTOP", "SIGSYS", "SIGTERM", "SIGTRAP",
		"SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGUSR1", "SIGUSR2", "SIGVTALRM", "SIGWINCH", "SIGXCPU", "SIGXFSZ",
		"SIGRTMIN", "SIGRTMAX",
	}
	for i := 1; i <= 15; i++ {
		names = append(names, "SIGRTMIN+"+strconv.Itoa(i))
	}
	for i := 1; i <= 14; i++ {
		names = append(names, "SIGRTMAX-"+strconv.Itoa(i))
	}
	return sets.List(sets.New(names...))
}()

// windowsStopSignals are the stop signals Windows pods may name.
var windowsStopSignals = []string{"SIGKILL", "SIGTERM"}

// validateStopSignal checks lifecycle.stopSignal as kube-apiserver does:
// the pod must name its OS (spec.os.name), and the signal must be one
// that OS has.
func validateStopSignal(sig corev1.Signal, os *corev1.PodOS, fld *field.Path) field.ErrorList {
	switch {
	case os == nil:
		return field.ErrorList{field.Forbidden(fld, "may not be set for containers with empty `spec.os.name`")}
	case os.Name == corev1.Windows:
		if !sets.New(windowsStopSignals...).Has(string(sig)) {
			return field.ErrorList{field.NotSupported(fld, sig, windowsStopSignals)}
		}
	case os.Name == corev1.Linux:
		if !sets.New(linuxStopSignals...).Has(string(sig)) {
			return field.ErrorList{field.NotSupported(fld, sig, linuxStopSignals)}
		}
	}
	return nil
}

var (
	resizeResources = []string{string(corev1.ResourceCPU), string(corev1.ResourceMemory)}
	resizePolicies  = []string{string(corev1.NotRequired), string(corev1.RestartContainer)}
)

// validateResizePolicy checks a container's resizePolicy as
// kube-apiserver does: cpu and memory at most once each, NotRequired or
// RestartContainer, and only NotRequired in a pod that never restarts.
func validateResizePolicy(policies []corev1.ContainerResizePolicy, podRestart corev1.RestartPolicy, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[corev1.ResourceName]()
	for i, p := range policies {
		if seen.Has(p.ResourceName) {
			errs = append(errs, field.Duplicate(fld.Index(i), p.ResourceName))
		}
		seen.Insert(p.ResourceName)
		switch p.ResourceName {
		case corev1.ResourceCPU, corev1.ResourceMemory:
		case "":
			errs = append(errs, field.Required(fld, ""))
		default:
			errs = append(errs, field.NotSupported(fld, p.ResourceName, resizeResources))
		}
		switch p.RestartPolicy {
		case corev1.NotRequired, corev1.RestartContainer:
		case "":
			errs = append(errs, field.Required(fld, ""))
		default:
			errs = append(errs, field.NotSupported(fld, p.RestartPolicy, resizePolicies))
		}
		if podRestart == corev1.RestartPolicyNever && p.RestartPolicy != corev1.NotRequired {
			errs = append(errs, field.Invalid(fld, p.RestartPolicy, "must be 'NotRequired' when `restartPolicy` is 'Never'"))
		}
	}
	return errs
}

// validateContainerExtras checks what ValidatePod's per-container pass
// leaves to this file: volumeMount paths and propagation, the stop
// signal, and the resize policy (which a regular init container may not
// have: only containers and sidecars are resized in place).
func validateContainerExtras(p *field.Path, c *corev1.Container, s *corev1.PodSpec, init bool) field.ErrorList {
	errs := validateMountPaths(p, c)
	if c.Lifecycle != nil && c.Lifecycle.StopSignal != nil {
		errs = append(errs, validateStopSignal(*c.Lifecycle.StopSignal, s.OS, p.Child("lifecycle", "stopSignal"))...)
	}
	errs = append(errs, validateResizePolicy(c.ResizePolicy, s.RestartPolicy, p.Child("resizePolicy"))...)
	if init && !isSidecar(c) && len(c.ResizePolicy) > 0 {
		errs = append(errs, field.Invalid(p.Child("resizePolicy"), c.ResizePolicy, "must not be set for init containers"))
	}
	return errs
}
