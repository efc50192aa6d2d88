package spec

import (
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

func resEnv(name, container, res, divisor string) corev1.EnvVar {
	sel := &corev1.ResourceFieldSelector{ContainerName: container, Resource: res}
	if divisor != "" {
		sel.Divisor = resource.MustParse(divisor)
	}
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: sel}}
}

func TestEnv(t *testing.T) {
	cmRef := func(name, key string, optional bool) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: &optional}}
	}
	lookup := func(kind RefKind, name string) (map[string]string, bool, error) {
		switch {
		case kind == KindConfigMap && name == "cfg":
			return map[string]string{"b": "2", "a": "1", "bad=name": "x"}, true, nil
		case kind == KindSecret && name == "sec":
			return map[string]string{"password": "s3cret"}, true, nil
		case name == "broken":
			return nil, false, errors.New("api down")
		}
		return nil, false, nil
	}
	for _, tc := range []struct {
		name     string
		env      []corev1.EnvVar
		envFrom  []corev1.EnvFromSource
		res      corev1.ResourceRequirements
		mutate   func(*Input)
		want     []string
		wantErr  string
		sentinel error
	}{
		{name: "defaults", want: []string{"PATH=/bin", "HOSTNAME=web", "IMG=1"}},
		{name: "no PATH in image", mutate: func(in *Input) { in.Image.Env = nil }, want: []string{defaultPath, "HOSTNAME=web"}},
		{name: "literal, override in place, expansion of earlier only", env: []corev1.EnvVar{
			{Name: "A", Value: "x"},
			{Name: "B", Value: "$(A)-$(C)-$(IMG)-$$(A)"},
			{Name: "C", Value: "c"},
			{Name: "IMG", Value: "2"},
			{Name: "A", Value: "y"},
		}, want: []string{"PATH=/bin", "HOSTNAME=web", "IMG=2", "A=y", "B=x-$(C)-$(IMG)-$(A)", "C=c"}},
		{name: "fieldRefs", env: []corev1.EnvVar{
			fieldEnv("N", "metadata.name"), fieldEnv("NS", "metadata.namespace"), fieldEnv("U", "metadata.uid"),
			fieldEnv("L", "metadata.labels['app']"), fieldEnv("AN", "metadata.annotations['note']"),
			fieldEnv("LM", "metadata.labels['missing']"),
			fieldEnv("NODE", "spec.nodeName"), fieldEnv("SA", "spec.serviceAccountName"),
			fieldEnv("IP", "status.podIP"), fieldEnv("IPS", "status.podIPs"),
			fieldEnv("HIP", "status.hostIP"), fieldEnv("HIPS", "status.hostIPs"),
		}, mutate: func(in *Input) { in.Image.Env = nil; in.PodIPs = []string{"10.0.0.5", "fd00::5"} },
			want: []string{defaultPath, "HOSTNAME=web", "N=web", "NS=default", "U=uid-1", "L=web", "AN=hi", "LM=",
				"NODE=node-a", "SA=sa", "IP=10.0.0.5", "IPS=10.0.0.5,fd00::5", "HIP=192.168.1.1", "HIPS=192.168.1.1"}},
		{name: "nodeName from input", env: []corev1.EnvVar{fieldEnv("NODE", "spec.nodeName")},
			mutate: func(in *Input) { in.Image.Env = nil; in.NodeName = "node-b" },
			want:   []string{defaultPath, "HOSTNAME=web", "NODE=node-b"}},
		{name: "unknown fieldPath", env: []corev1.EnvVar{{Name: "X"}, fieldEnv("S", "status.phase")},
			wantErr: "spec.containers[0].env[1].valueFrom.fieldRef: fieldPath \"status.phase\"", sentinel: ErrUnsupported},
		{name: "resourceFieldRef", env: []corev1.EnvVar{
			resEnv("CL", "", "limits.cpu", ""), resEnv("CLM", "", "limits.cpu", "1m"),
			resEnv("CR", "", "requests.cpu", "100m"), resEnv("ML", "", "limits.memory", "1Mi"),
			resEnv("MR", "", "requests.memory", ""), resEnv("OTHER", "init", "limits.memory", "1Mi"),
		}, res: corev1.ResourceRequirements{
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("1000")},
		}, mutate: func(in *Input) {
			in.Image.Env = nil
			in.Pod.Spec.InitContainers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("3Mi")}
		}, want: []string{defaultPath, "HOSTNAME=web", "CL=2", "CLM=1500", "CR=3", "ML=64", "MR=1000", "OTHER=3"}},
		{name: "resourceFieldRef limit from allocatable", env: []corev1.EnvVar{resEnv("CL", "", "limits.cpu", "")},
			mutate: func(in *Input) {
				in.Image.Env = nil
				in.NodeAllocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}
			}, want: []string{defaultPath, "HOSTNAME=web", "CL=2"}},
		{name: "resourceFieldRef no limit no allocatable", env: []corev1.EnvVar{resEnv("CL", "", "limits.memory", "")},
			wantErr: "env[0].valueFrom.resourceFieldRef: memory has no limit", sentinel: ErrInvalid},
		{name: "resourceFieldRef without limits reads node allocatable, divisor honoured", env: []corev1.EnvVar{
			resEnv("CL", "", "limits.cpu", "1m"), resEnv("ML", "", "limits.memory", "1Mi"),
			resEnv("EL", "", "limits.ephemeral-storage", "1Gi"), resEnv("ER", "", "requests.ephemeral-storage", ""),
			resEnv("CR", "", "requests.cpu", ""),
		}, mutate: func(in *Input) {
			in.Image.Env = nil
			in.NodeAllocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"),
				corev1.ResourceMemory: resource.MustParse("3Gi"), corev1.ResourceEphemeralStorage: resource.MustParse("10Gi")}
		}, want: []string{defaultPath, "HOSTNAME=web", "CL=2000", "ML=3072", "EL=10", "ER=0", "CR=0"}},
		{name: "resourceFieldRef hugepages", env: []corev1.EnvVar{resEnv("H", "", "limits.hugepages-2Mi", "")},
			wantErr: "resourceFieldRef: resource \"limits.hugepages-2Mi\"", sentinel: ErrUnsupported},
		{name: "hostIPs", env: []corev1.EnvVar{fieldEnv("HIP", "status.hostIP"), fieldEnv("HIPS", "status.hostIPs")},
			mutate: func(in *Input) { in.Image.Env = nil; in.HostIP = ""; in.HostIPs = []string{"192.168.1.1", "fd00::1"} },
			want:   []string{defaultPath, "HOSTNAME=web", "HIP=192.168.1.1", "HIPS=192.168.1.1,fd00::1"}},
		{name: "configMapKeyRef without lookup", env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}, {Name: "C", ValueFrom: cmRef("cfg", "a", false)}},
			mutate: func(in *Input) { in.Lookup = nil }, wantErr: "spec.containers[0].env[2].valueFrom.configMapKeyRef: not supported yet", sentinel: ErrUnsupported},
		{name: "envFrom without lookup", envFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}}},
			mutate: func(in *Input) { in.Lookup = nil }, wantErr: "spec.containers[0].envFrom[0].secretRef: not supported yet", sentinel: ErrUnsupported},
		{name: "fileKeyRef", env: []corev1.EnvVar{{Name: "F", ValueFrom: &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{}}}},
			wantErr: "env[0].valueFrom.fileKeyRef: not supported yet", sentinel: ErrUnsupported},
		{name: "lookups", mutate: func(in *Input) { in.Image.Env = nil; in.Lookup = lookup },
			envFrom: []corev1.EnvFromSource{
				{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: ptr(true)}},
			},
			env: []corev1.EnvVar{
				{Name: "A", ValueFrom: cmRef("cfg", "a", false)},
				{Name: "P", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
				{Name: "OPT", ValueFrom: cmRef("cfg", "missing", true)},
				{Name: "OPT2", ValueFrom: cmRef("nope", "a", true)},
				{Name: "E", Value: "$(CFG_b)$(P)"},
			},
			want: []string{defaultPath, "HOSTNAME=web", "CFG_a=1", "CFG_b=2", "A=1", "P=s3cret", "E=2s3cret"}},
		{name: "missing key", mutate: func(in *Input) { in.Lookup = lookup },
			env:     []corev1.EnvVar{{Name: "A", ValueFrom: cmRef("cfg", "zz", false)}},
			wantErr: "configMapKeyRef: couldn't find key zz in ConfigMap default/cfg", sentinel: ErrInvalid},
		{name: "missing configmap", mutate: func(in *Input) { in.Lookup = lookup },
			env:     []corev1.EnvVar{{Name: "A", ValueFrom: cmRef("nope", "a", false)}},
			wantErr: "ConfigMap \"nope\" not found", sentinel: ErrInvalid},
		{name: "lookup failure", mutate: func(in *Input) { in.Lookup = lookup },
			env:     []corev1.EnvVar{{Name: "A", ValueFrom: cmRef("broken", "a", true)}},
			wantErr: "look up ConfigMap \"broken\": api down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput()
			in.Container.Env, in.Container.EnvFrom, in.Container.Resources = tc.env, tc.envFrom, tc.res
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			got, err := Env(in)
			wantErr(t, err, tc.wantErr, tc.sentinel)
			if tc.wantErr == "" && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestEnvInitContainerPath(t *testing.T) {
	in := testInput()
	in.Container = &in.Pod.Spec.InitContainers[0]
	in.Container.Env = []corev1.EnvVar{fieldEnv("X", "status.phase")}
	_, err := Env(in)
	wantErr(t, err, "spec.initContainers[0].env[0]", ErrUnsupported)
}
