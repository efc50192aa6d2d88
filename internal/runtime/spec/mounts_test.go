package spec

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// mountSummary renders mounts as "dest type src opts" lines for comparison.
func mountSummary(ms []specs.Mount) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s %s %s %s", m.Destination, m.Type, m.Source, strings.Join(m.Options, ",")))
	}
	return out
}

func TestBuildMounts(t *testing.T) {
	const (
		proc    = "/proc proc proc nosuid,noexec,nodev"
		dev     = "/dev tmpfs tmpfs nosuid,strictatime,mode=755,size=65536k"
		pts     = "/dev/pts devpts devpts nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"
		shm     = "/dev/shm tmpfs shm nosuid,noexec,nodev,mode=1777,size=65536k"
		mqueue  = "/dev/mqueue mqueue mqueue nosuid,noexec,nodev"
		sysRO   = "/sys sysfs sysfs nosuid,noexec,nodev,ro"
		cgRO    = "/sys/fs/cgroup cgroup cgroup nosuid,noexec,nodev,relatime,ro"
		sysRW   = "/sys sysfs sysfs nosuid,noexec,nodev,rw"
		cgRW    = "/sys/fs/cgroup cgroup cgroup nosuid,noexec,nodev,relatime,rw"
		hosts   = "/etc/hosts bind /pod/hosts rbind,rprivate,rw"
		resolv  = "/etc/resolv.conf bind /pod/resolv.conf rbind,rprivate,rw"
		hname   = "/etc/hostname bind /pod/hostname rbind,rprivate,rw"
		shmBind = "/dev/shm bind /pod/shm rbind,rprivate,rw"
	)
	podFiles := func(in *Input) {
		in.EtcHosts, in.ResolvConf, in.EtcHostname, in.ShmDir = "/pod/hosts", "/pod/resolv.conf", "/pod/hostname", "/pod/shm"
	}
	for _, tc := range []struct {
		name    string
		mutate  func(*Input)
		priv    bool
		want    []string
		prop    string
		wantErr string
	}{
		{name: "bare", want: []string{proc, dev, pts, shm, mqueue, sysRO, cgRO}},
		{name: "privileged", priv: true, want: []string{proc, dev, pts, shm, mqueue, sysRW, cgRW}},
		{name: "pod files", mutate: podFiles, want: []string{proc, dev, pts, mqueue, sysRO, cgRO, hosts, resolv, hname, shmBind}},
		{name: "pod files read-only with read-only rootfs", mutate: func(in *Input) {
			podFiles(in)
			in.Container.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr(true)}
		}, want: []string{proc, dev, pts, mqueue, sysRO, cgRO,
			"/etc/hosts bind /pod/hosts rbind,rprivate,ro", "/etc/resolv.conf bind /pod/resolv.conf rbind,rprivate,ro",
			"/etc/hostname bind /pod/hostname rbind,rprivate,ro", shmBind}},
		{name: "volumes sorted, override pod file, ro", mutate: func(in *Input) {
			podFiles(in)
			in.Mounts = []Mount{
				{HostPath: "/v/deep", ContainerPath: "/data/sub/deep"},
				{HostPath: "/v/data", ContainerPath: "/data/", ReadOnly: true},
				{HostPath: "/v/mine", ContainerPath: "/etc/hosts"},
				{HostPath: "/v/term", ContainerPath: "/dev/termination-log"},
			}
		}, want: []string{proc, dev, pts, mqueue, sysRO, cgRO,
			"/data bind /v/data rbind,rprivate,ro", "/etc/hosts bind /v/mine rbind,rprivate,rw",
			"/dev/termination-log bind /v/term rbind,rprivate,rw", resolv, hname, shmBind,
			"/data/sub/deep bind /v/deep rbind,rprivate,rw"}},
		{name: "volume over /dev drops defaults under it", mutate: func(in *Input) {
			in.Mounts = []Mount{{HostPath: "/v/dev", ContainerPath: "/dev"}}
		}, want: []string{proc, sysRO, cgRO, "/dev bind /v/dev rbind,rprivate,rw"}},
		{name: "propagation", priv: true, mutate: func(in *Input) {
			in.Mounts = []Mount{
				{HostPath: "/a", ContainerPath: "/a", Propagation: corev1.MountPropagationHostToContainer},
				{HostPath: "/b", ContainerPath: "/b", Propagation: corev1.MountPropagationBidirectional},
				{HostPath: "/c", ContainerPath: "/c", Propagation: corev1.MountPropagationNone},
			}
		}, prop: "rshared", want: []string{proc, dev, pts, shm, mqueue, sysRW, cgRW,
			"/a bind /a rbind,rslave,rw", "/b bind /b rbind,rshared,rw", "/c bind /c rbind,rprivate,rw"}},
		{name: "host to container", mutate: func(in *Input) {
			in.Mounts = []Mount{{HostPath: "/a", ContainerPath: "/a", Propagation: corev1.MountPropagationHostToContainer}}
		}, prop: "rslave", want: []string{proc, dev, pts, shm, mqueue, sysRO, cgRO, "/a bind /a rbind,rslave,rw"}},
		{name: "locked flags of the source repeated", mutate: func(in *Input) {
			in.Mounts = []Mount{{HostPath: "/secret", ContainerPath: "/s", ReadOnly: true, Locked: []string{"nosuid", "nodev", "noexec"}}}
		}, want: []string{proc, dev, pts, shm, mqueue, sysRO, cgRO, "/s bind /secret rbind,rprivate,ro,nosuid,nodev,noexec"}},
		{name: "bidirectional unprivileged", mutate: func(in *Input) {
			in.Mounts = []Mount{{HostPath: "/b", ContainerPath: "/b", Propagation: corev1.MountPropagationBidirectional}}
		}, wantErr: "only to privileged containers"},
		{name: "relative", mutate: func(in *Input) { in.Mounts = []Mount{{HostPath: "v", ContainerPath: "/v"}} }, wantErr: "must be absolute"},
		{name: "duplicate", mutate: func(in *Input) {
			in.Mounts = []Mount{{HostPath: "/x", ContainerPath: "/v"}, {HostPath: "/y", ContainerPath: "/v/"}}
		}, wantErr: "duplicate mount destination"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput()
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			got, prop, err := buildMounts(in, tc.priv, "spec.containers[0]")
			wantErr(t, err, tc.wantErr, ErrInvalid)
			if tc.wantErr != "" {
				return
			}
			if s := mountSummary(got); !reflect.DeepEqual(s, tc.want) {
				t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(s, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if prop != tc.prop {
				t.Fatalf("rootfs propagation %q, want %q", prop, tc.prop)
			}
		})
	}
}
