package spec

import (
	"reflect"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

func TestCapabilities(t *testing.T) {
	without := func(drop ...string) []string {
		return slices.DeleteFunc(DefaultCapabilities(), func(c string) bool { return slices.Contains(drop, c) })
	}
	for _, tc := range []struct {
		name     string
		sc       *corev1.SecurityContext
		host     []string
		want     []string
		wantErr  string
		sentinel error
	}{
		{name: "default", want: DefaultCapabilities()},
		{name: "add with and without prefix, drop lowercase", sc: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
			Add: []corev1.Capability{"NET_ADMIN", "CAP_SYS_TIME", "chown"}, Drop: []corev1.Capability{"net_raw", "CAP_MKNOD"}}},
			want: append(without("CAP_NET_RAW", "CAP_MKNOD"), "CAP_NET_ADMIN", "CAP_SYS_TIME")},
		{name: "drop ALL add one", sc: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
			Add: []corev1.Capability{"NET_BIND_SERVICE"}, Drop: []corev1.Capability{"ALL"}}},
			want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "drop all", sc: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"all"}}},
			want: []string{}},
		{name: "add ALL drop one", sc: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
			Add: []corev1.Capability{"ALL"}, Drop: []corev1.Capability{"SYS_ADMIN"}}},
			want: slices.DeleteFunc(append(DefaultCapabilities(), slices.DeleteFunc(AllCapabilities(), func(c string) bool {
				return slices.Contains(DefaultCapabilities(), c)
			})...), func(c string) bool { return c == "CAP_SYS_ADMIN" })},
		{name: "add ALL and drop ALL", sc: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
			Add: []corev1.Capability{"ALL"}, Drop: []corev1.Capability{"ALL"}}}, want: []string{}},
		{name: "privileged ignores drop", sc: &corev1.SecurityContext{Privileged: ptr(true), Capabilities: &corev1.Capabilities{
			Drop: []corev1.Capability{"ALL"}}}, want: AllCapabilities()},
		{name: "privileged gets the host set", host: []string{"CAP_KILL", "CAP_CHOWN"},
			sc: &corev1.SecurityContext{Privileged: ptr(true)}, want: []string{"CAP_KILL", "CAP_CHOWN"}},
		{name: "add ALL gets the host set", host: []string{"CAP_CHOWN", "CAP_SYS_ADMIN"},
			sc:   &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"ALL"}}},
			want: append(DefaultCapabilities(), "CAP_SYS_ADMIN")},
		{name: "unknown", sc: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "FLY"}}},
			wantErr: "spec.containers[0].securityContext.capabilities.add[1]: unknown capability \"FLY\"", sentinel: ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := capabilities(&corev1.Container{SecurityContext: tc.sc}, tc.host, "spec.containers[0]")
			wantErr(t, err, tc.wantErr, tc.sentinel)
			if tc.wantErr != "" {
				return
			}
			if !reflect.DeepEqual(got.Bounding, tc.want) || !reflect.DeepEqual(got.Effective, tc.want) || !reflect.DeepEqual(got.Permitted, tc.want) {
				t.Fatalf("got %+v\nwant %q", got, tc.want)
			}
			if len(got.Inheritable) != 0 || len(got.Ambient) != 0 {
				t.Fatalf("inheritable/ambient not empty: %+v", got)
			}
		})
	}
	if len(AllCapabilities()) != 41 {
		t.Fatalf("AllCapabilities has %d entries", len(AllCapabilities()))
	}
}

func TestNoNewPrivileges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sc      *corev1.SecurityContext
		want    bool
		wantErr string
	}{
		{name: "unset", want: false},
		{name: "allowed", sc: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(true)}, want: false},
		{name: "disallowed", sc: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false)}, want: true},
		{name: "privileged unset", sc: &corev1.SecurityContext{Privileged: ptr(true)}, want: false},
		{name: "privileged and false", sc: &corev1.SecurityContext{Privileged: ptr(true), AllowPrivilegeEscalation: ptr(false)},
			wantErr: "allowPrivilegeEscalation: cannot set allowPrivilegeEscalation to false and privileged to true"},
		{name: "sys_admin and false", sc: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false),
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}},
			wantErr: "capabilities.Add CAP_SYS_ADMIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := noNewPrivileges(&corev1.Container{SecurityContext: tc.sc}, "spec.containers[0]")
			wantErr(t, err, tc.wantErr, ErrInvalid)
			if got != tc.want {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestSeccomp(t *testing.T) {
	profile := func(typ corev1.SeccompProfileType) *corev1.SeccompProfile { return &corev1.SeccompProfile{Type: typ} }
	for _, tc := range []struct {
		name     string
		pod, ctr *corev1.SeccompProfile
		priv     bool
		want     bool // a filter is applied
		wantErr  string
	}{
		{name: "unset is RuntimeDefault", want: UnsetSeccompProfile == corev1.SeccompProfileTypeRuntimeDefault},
		{name: "pod unconfined", pod: profile(corev1.SeccompProfileTypeUnconfined), want: false},
		{name: "container overrides pod", pod: profile(corev1.SeccompProfileTypeUnconfined), ctr: profile(corev1.SeccompProfileTypeRuntimeDefault), want: true},
		{name: "container unconfined", pod: profile(corev1.SeccompProfileTypeRuntimeDefault), ctr: profile(corev1.SeccompProfileTypeUnconfined), want: false},
		{name: "privileged", priv: true, ctr: profile(corev1.SeccompProfileTypeRuntimeDefault), want: false},
		{name: "pod localhost", pod: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr("x.json")},
			wantErr: "spec.securityContext.seccompProfile.type Localhost: not supported yet"},
		{name: "container localhost", ctr: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr("x.json")},
			wantErr: "spec.containers[0].securityContext.seccompProfile.type Localhost: not supported yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput()
			if tc.pod != nil {
				in.Pod.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: tc.pod}
			}
			in.Container.SecurityContext = &corev1.SecurityContext{SeccompProfile: tc.ctr, Privileged: &tc.priv}
			s, err := Build(in)
			wantErr(t, err, tc.wantErr, ErrUnsupported)
			if tc.wantErr != "" {
				return
			}
			if got := s.Linux.Seccomp != nil; got != tc.want {
				t.Fatalf("seccomp applied = %v, want %v", got, tc.want)
			}
			if s.Linux.Seccomp != nil && s.Linux.Seccomp.DefaultAction != specs.ActErrno {
				t.Fatalf("default action %s", s.Linux.Seccomp.DefaultAction)
			}
		})
	}
}

// TestSeccompFollowsCapabilities checks that the default profile is computed
// from the final bounding set: CAP_SYS_ADMIN unlocks mount, CAP_SYS_TIME
// settimeofday.
func TestSeccompFollowsCapabilities(t *testing.T) {
	allows := func(s *specs.Spec, name string) bool {
		for _, sc := range s.Linux.Seccomp.Syscalls {
			if sc.Action == specs.ActAllow && len(sc.Args) == 0 && slices.Contains(sc.Names, name) {
				return true
			}
		}
		return false
	}
	in := testInput()
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if allows(s, "mount") || allows(s, "settimeofday") || !allows(s, "read") {
		t.Fatal("default profile: mount/settimeofday allowed or read denied")
	}
	in.Container.SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN", "SYS_TIME"}}}
	if s, err = Build(in); err != nil {
		t.Fatal(err)
	}
	if !allows(s, "mount") || !allows(s, "settimeofday") {
		t.Fatal("CAP_SYS_ADMIN/CAP_SYS_TIME did not unlock mount/settimeofday")
	}
}

func TestCapabilitiesFromMask(t *testing.T) {
	got := capabilitiesFromMask(0x000001fffeffffff) // this VM: all but CAP_SYS_RESOURCE
	want := slices.DeleteFunc(AllCapabilities(), func(c string) bool { return c == "CAP_SYS_RESOURCE" })
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if got := capabilitiesFromMask(0x2400); !reflect.DeepEqual(got, []string{"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}) {
		t.Fatalf("got %q", got)
	}
	cur, err := CurrentCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cur {
		if _, ok := normalizeCap(c); !ok {
			t.Fatalf("unknown capability %q from CurrentCapabilities", c)
		}
	}
}
