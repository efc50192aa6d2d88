package spec

import (
	"encoding/json"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestBuildDefaults(t *testing.T) {
	in := testInput()
	in.DefaultRlimitNofile = 1024
	in.SandboxID = "sb1"
	in.Container.Resources.Limits = corev1.ResourceList{"cpu": resource.MustParse("500m"), "memory": resource.MustParse("64Mi")}
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != OCIVersion || s.Root.Path != "/rootfs" || s.Root.Readonly {
		t.Errorf("version/root: %s %+v", s.Version, s.Root)
	}
	p := s.Process
	if p.Cwd != "/" || p.Terminal || p.NoNewPrivileges || p.OOMScoreAdj != nil || p.User.UID != 0 {
		t.Errorf("process: %+v", p)
	}
	if !reflect.DeepEqual(p.Args, []string{"sh"}) {
		t.Errorf("args %q", p.Args)
	}
	if want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}}; !reflect.DeepEqual(p.Rlimits, want) {
		t.Errorf("rlimits %+v", p.Rlimits)
	}
	if !reflect.DeepEqual(p.Capabilities.Bounding, DefaultCapabilities()) {
		t.Errorf("caps %q", p.Capabilities.Bounding)
	}
	l := s.Linux
	if l.CgroupsPath != "/peapod/sb/ctr" || *l.Resources.CPU.Quota != 50000 || *l.Resources.Memory.Limit != 64<<20 {
		t.Errorf("cgroups %s %+v", l.CgroupsPath, l.Resources)
	}
	if len(l.Resources.Devices) != 9 || l.Resources.Devices[0].Allow || !l.Resources.Devices[1].Allow {
		t.Errorf("devices %+v", l.Resources.Devices)
	}
	if !reflect.DeepEqual(l.MaskedPaths, defaultMaskedPaths) || !reflect.DeepEqual(l.ReadonlyPaths, defaultReadonlyPaths) {
		t.Errorf("masked %q readonly %q", l.MaskedPaths, l.ReadonlyPaths)
	}
	if l.Seccomp == nil {
		t.Error("no seccomp")
	}
	if s.Hostname != "" {
		t.Errorf("hostname %q set with a joined UTS namespace", s.Hostname)
	}
	wantAnn := map[string]string{
		AnnotationContainerType: "container", AnnotationContainerName: "main", AnnotationImageName: "busybox",
		AnnotationSandboxID: "sb1", AnnotationSandboxName: "web", AnnotationSandboxNamespace: "default", AnnotationSandboxUID: "uid-1",
	}
	if !reflect.DeepEqual(s.Annotations, wantAnn) {
		t.Errorf("annotations %v", s.Annotations)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
	// Build is pure: a second call gives an equal, independent spec.
	s2, err := Build(in)
	if err != nil || !reflect.DeepEqual(s, s2) {
		t.Fatalf("second build differs (err %v)", err)
	}
	s2.Process.Capabilities.Bounding[0] = "X"
	if DefaultCapabilities()[0] == "X" {
		t.Fatal("spec shares the default capability slice")
	}
}

func TestBuildProcess(t *testing.T) {
	in := testInput()
	in.Image.WorkingDir = "/img"
	in.Container.TTY = true
	in.Container.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr(true), AllowPrivilegeEscalation: ptr(false)}
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.Cwd != "/img" || !s.Process.Terminal || !s.Root.Readonly || !s.Process.NoNewPrivileges || s.Process.Rlimits != nil {
		t.Fatalf("process %+v root %+v", s.Process, s.Root)
	}
	in.Container.WorkingDir = "/work"
	if s, _ = Build(in); s.Process.Cwd != "/work" {
		t.Fatalf("cwd %q", s.Process.Cwd)
	}
}

func TestBuildNamespaces(t *testing.T) {
	ns := func(typ specs.LinuxNamespaceType, path string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: typ, Path: path}
	}
	for _, tc := range []struct {
		name     string
		mutate   func(*Input)
		want     []specs.LinuxNamespace
		hostname string
	}{
		{name: "joined", want: []specs.LinuxNamespace{ns("mount", ""), ns("network", "/proc/1/ns/net"), ns("uts", "/proc/1/ns/uts"),
			ns("ipc", "/proc/1/ns/ipc"), ns("pid", "")}},
		{name: "shared pid and cgroup ns", mutate: func(in *Input) { in.Namespaces.PID = "/proc/2/ns/pid"; in.CgroupNamespace = true },
			want: []specs.LinuxNamespace{ns("mount", ""), ns("network", "/proc/1/ns/net"), ns("uts", "/proc/1/ns/uts"),
				ns("ipc", "/proc/1/ns/ipc"), ns("pid", "/proc/2/ns/pid"), ns("cgroup", "")}},
		{name: "all new sets hostname", mutate: func(in *Input) { in.Namespaces = SandboxNamespaces{} },
			want: []specs.LinuxNamespace{ns("mount", ""), ns("network", ""), ns("uts", ""), ns("ipc", ""), ns("pid", "")}, hostname: "web"},
		{name: "host namespaces", mutate: func(in *Input) {
			in.Namespaces = SandboxNamespaces{}
			in.Pod.Spec.HostNetwork, in.Pod.Spec.HostIPC, in.Pod.Spec.HostPID = true, true, true
		}, want: []specs.LinuxNamespace{ns("mount", "")}},
		{name: "host network only keeps the pod's IPC and PID", mutate: func(in *Input) { in.Pod.Spec.HostNetwork = true },
			want: []specs.LinuxNamespace{ns("mount", ""), ns("ipc", "/proc/1/ns/ipc"), ns("pid", "")}},
		{name: "host PID only", mutate: func(in *Input) { in.Pod.Spec.HostPID = true },
			want: []specs.LinuxNamespace{ns("mount", ""), ns("network", "/proc/1/ns/net"), ns("uts", "/proc/1/ns/uts"), ns("ipc", "/proc/1/ns/ipc")}},
		{name: "user namespace joined", mutate: func(in *Input) {
			in.Pod.Spec.HostUsers = ptr(false)
			in.Namespaces.User = "/proc/3/ns/user"
			in.UserNamespace = &UserNamespace{HostID: 131072, Length: 65536}
		}, want: []specs.LinuxNamespace{ns("mount", ""), ns("network", "/proc/1/ns/net"), ns("uts", "/proc/1/ns/uts"),
			ns("ipc", "/proc/1/ns/ipc"), ns("pid", ""), ns("user", "/proc/3/ns/user")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput()
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			s, err := Build(in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Linux.Namespaces, tc.want) {
				t.Fatalf("namespaces %+v", s.Linux.Namespaces)
			}
			if s.Hostname != tc.hostname {
				t.Fatalf("hostname %q, want %q", s.Hostname, tc.hostname)
			}
		})
	}
}

func TestBuildPrivileged(t *testing.T) {
	in := testInput()
	in.Container.SecurityContext = &corev1.SecurityContext{Privileged: ptr(true)}
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	l := s.Linux
	if l.Seccomp != nil || l.MaskedPaths != nil || l.ReadonlyPaths != nil {
		t.Fatalf("privileged keeps confinement: %+v", l)
	}
	if want := []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}; !reflect.DeepEqual(l.Resources.Devices, want) {
		t.Fatalf("devices %+v", l.Resources.Devices)
	}
	if len(s.Process.Capabilities.Effective) != 41 {
		t.Fatalf("caps %q", s.Process.Capabilities.Effective)
	}
}

func TestBuildSysctls(t *testing.T) {
	in := testInput()
	in.Pod.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}}}
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Linux.Sysctl, map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}) {
		t.Fatalf("sysctl %v", s.Linux.Sysctl)
	}
}

func TestBuildRefuses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mutate   func(*Input)
		wantErr  string
		sentinel error
	}{
		{name: "volumeDevices", mutate: func(in *Input) {
			in.Container.VolumeDevices = []corev1.VolumeDevice{{Name: "d", DevicePath: "/dev/xvda"}}
		}, wantErr: "spec.containers[0].volumeDevices: not supported yet", sentinel: ErrUnsupported},
		{name: "init container field path", mutate: func(in *Input) {
			in.Container = &in.Pod.Spec.InitContainers[0]
			in.Container.VolumeDevices = []corev1.VolumeDevice{{Name: "d", DevicePath: "/dev/xvda"}}
		}, wantErr: "spec.initContainers[0].volumeDevices", sentinel: ErrUnsupported},
		{name: "windowsOptions", mutate: func(in *Input) {
			in.Container.SecurityContext = &corev1.SecurityContext{WindowsOptions: &corev1.WindowsSecurityContextOptions{}}
		}, wantErr: "securityContext.windowsOptions", sentinel: ErrUnsupported},
		{name: "appArmor RuntimeDefault", mutate: func(in *Input) {
			in.Container.SecurityContext = &corev1.SecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault}}
		}, wantErr: "spec.containers[0].securityContext.appArmorProfile.type RuntimeDefault: not supported yet", sentinel: ErrUnsupported},
		{name: "pod appArmor Localhost", mutate: func(in *Input) {
			in.Pod.Spec.SecurityContext = &corev1.PodSecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeLocalhost}}
		}, wantErr: "spec.securityContext.appArmorProfile.type Localhost", sentinel: ErrUnsupported},
		{name: "procMount Unmasked", mutate: func(in *Input) {
			in.Container.SecurityContext = &corev1.SecurityContext{ProcMount: ptr(corev1.UnmaskedProcMount)}
		}, wantErr: "securityContext.procMount Unmasked: not supported yet", sentinel: ErrUnsupported},
		{name: "pod hugepages", mutate: func(in *Input) {
			in.Pod.Spec.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{"hugepages-2Mi": resource.MustParse("2Mi")}}
		}, wantErr: "spec.resources.limits[hugepages-2Mi]: not supported yet", sentinel: ErrUnsupported},
		{name: "windows pod", mutate: func(in *Input) { in.Pod.Spec.OS = &corev1.PodOS{Name: corev1.Windows} },
			wantErr: "spec.os.name windows", sentinel: ErrUnsupported},
		{name: "recursiveReadOnly", mutate: func(in *Input) {
			in.Container.VolumeMounts = []corev1.VolumeMount{{Name: "a", MountPath: "/a"},
				{Name: "v", MountPath: "/v", ReadOnly: true, RecursiveReadOnly: ptr(corev1.RecursiveReadOnlyEnabled)}}
		}, wantErr: "spec.containers[0].volumeMounts[1].recursiveReadOnly: not supported yet", sentinel: ErrUnsupported},
		{name: "bindMountOptions", mutate: func(in *Input) {
			in.Container.VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/v", BindMountOptions: []string{"noexec"}}}
		}, wantErr: "volumeMounts[0].bindMountOptions", sentinel: ErrUnsupported},
		{name: "user namespace mapping the host's root", mutate: func(in *Input) {
			in.UserNamespace = &UserNamespace{HostID: 0, Length: 65536}
		}, wantErr: "spec.containers[0]: user namespace from host ID 0, length 65536: the host's root may not be mapped", sentinel: ErrInvalid},
		{name: "not in pod", mutate: func(in *Input) { in.Container = &corev1.Container{Name: "ghost"} },
			wantErr: "container \"ghost\" is not in pod default/web", sentinel: ErrInvalid},
		{name: "relative rootfs", mutate: func(in *Input) { in.Rootfs = "rootfs" }, wantErr: "must be an absolute path", sentinel: ErrInvalid},
		{name: "no command", mutate: func(in *Input) { in.Image = ImageConfig{} },
			wantErr: "spec.containers[0]: no command specified", sentinel: ErrInvalid},
		{name: "runAsNonRoot", mutate: func(in *Input) { in.Pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr(true)} },
			wantErr: "container has runAsNonRoot and image will run as root", sentinel: ErrRunAsNonRoot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput()
			tc.mutate(&in)
			_, err := Build(in)
			wantErr(t, err, tc.wantErr, tc.sentinel)
		})
	}
}

// TestBuildAccepts lists fields that are accepted because other packages own
// them or they do not reach the spec.
func TestBuildAccepts(t *testing.T) {
	in := testInput()
	c := in.Container
	c.Stdin, c.StdinOnce = true, true
	c.Ports = []corev1.ContainerPort{{ContainerPort: 80}}
	c.LivenessProbe = &corev1.Probe{}
	c.Lifecycle = &corev1.Lifecycle{}
	c.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	c.VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/v", ReadOnly: true, RecursiveReadOnly: ptr(corev1.RecursiveReadOnlyIfPossible)}}
	c.SecurityContext = &corev1.SecurityContext{ProcMount: ptr(corev1.DefaultProcMount),
		AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}}
	c.Resources.Limits = corev1.ResourceList{"ephemeral-storage": resource.MustParse("1Gi")}
	in.Pod.Spec.OS = &corev1.PodOS{Name: corev1.Linux}
	in.Pod.Spec.HostUsers = ptr(true)
	// Ignored where SELinux is off: the runtime passes no labels then.
	c.SecurityContext.SELinuxOptions = &corev1.SELinuxOptions{Type: "spc_t"}
	in.Pod.Spec.SecurityContext = &corev1.PodSecurityContext{SELinuxOptions: &corev1.SELinuxOptions{Level: "s0:c1,c2"}}
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.SelinuxLabel != "" || s.Linux.MountLabel != "" {
		t.Fatalf("labels without SELinux: %q, %q", s.Process.SelinuxLabel, s.Linux.MountLabel)
	}
}

func TestBuildUserNamespaceMappings(t *testing.T) {
	in := testInput()
	in.Namespaces.User = "/proc/3/ns/user"
	in.UserNamespace = &UserNamespace{HostID: 131072, Length: 65536}
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 131072, Size: 65536}}
	if !reflect.DeepEqual(s.Linux.UIDMappings, want) || !reflect.DeepEqual(s.Linux.GIDMappings, want) {
		t.Fatalf("uid mappings %+v, gid mappings %+v, want %+v", s.Linux.UIDMappings, s.Linux.GIDMappings, want)
	}
	if s.Process.User.UID != 0 {
		t.Fatalf("uid %d inside, want 0 (the image's root, host ID 131072)", s.Process.User.UID)
	}
	in.UserNamespace = nil
	if s, err = Build(in); err != nil || s.Linux.UIDMappings != nil || hasNamespace(s.Linux.Namespaces, specs.UserNamespace, "/proc/3/ns/user") {
		t.Fatalf("without UserNamespace: mappings %+v, namespaces %+v, err %v", s.Linux.UIDMappings, s.Linux.Namespaces, err)
	}
}

func TestBuildSELinuxLabels(t *testing.T) {
	in := testInput()
	in.SELinux = SELinuxLabels{Process: "system_u:system_r:container_t:s0:c1,c2", Mount: "system_u:object_r:container_file_t:s0:c1,c2"}
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.SelinuxLabel != in.SELinux.Process || s.Linux.MountLabel != in.SELinux.Mount {
		t.Fatalf("labels %q, %q", s.Process.SelinuxLabel, s.Linux.MountLabel)
	}
}
