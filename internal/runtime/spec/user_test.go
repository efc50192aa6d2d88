package spec

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

func TestResolveUser(t *testing.T) {
	for _, tc := range []struct {
		name     string
		image    string
		psc      *corev1.PodSecurityContext
		sc       *corev1.SecurityContext
		noPasswd bool
		want     specs.User
		wantErr  string
		sentinel error
	}{
		{name: "image default root", want: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}}},
		{name: "numeric in passwd", image: "33", want: specs.User{UID: 33, GID: 33, AdditionalGids: []uint32{33, 44}}},
		{name: "numeric not in passwd", image: "1234", want: specs.User{UID: 1234, GID: 0, AdditionalGids: []uint32{0}}},
		{name: "name", image: "nobody", want: specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{65534}}},
		{name: "name:group", image: "www-data:www-data", want: specs.User{UID: 33, GID: 33, AdditionalGids: []uint32{33, 44}}},
		{name: "name:gid", image: "nobody:29", want: specs.User{UID: 65534, GID: 29, AdditionalGids: []uint32{29}}},
		{name: "uid:gid", image: "1000:2000", want: specs.User{UID: 1000, GID: 2000, AdditionalGids: []uint32{2000}}},
		{name: "uid:groupname", image: "1000:audio", want: specs.User{UID: 1000, GID: 29, AdditionalGids: []uint32{29}}},
		{name: "unknown user", image: "ghost", wantErr: "unable to find user ghost", sentinel: ErrInvalid},
		{name: "unknown group", image: "nobody:ghosts", wantErr: "unable to find group ghosts", sentinel: ErrInvalid},
		{name: "named user without passwd", image: "nobody", noPasswd: true, wantErr: "unable to find user nobody", sentinel: ErrInvalid},
		{name: "pod runAsUser over image", image: "nobody", psc: &corev1.PodSecurityContext{RunAsUser: ptr[int64](33)},
			want: specs.User{UID: 33, GID: 33, AdditionalGids: []uint32{33, 44}}},
		{name: "container over pod", psc: &corev1.PodSecurityContext{RunAsUser: ptr[int64](33), RunAsGroup: ptr[int64](5)},
			sc:   &corev1.SecurityContext{RunAsUser: ptr[int64](1000), RunAsGroup: ptr[int64](3000)},
			want: specs.User{UID: 1000, GID: 3000, AdditionalGids: []uint32{3000}}},
		{name: "runAsGroup with image user", image: "www-data:www-data", sc: &corev1.SecurityContext{RunAsGroup: ptr[int64](7)},
			want: specs.User{UID: 33, GID: 7, AdditionalGids: []uint32{7, 44}}},
		{name: "supplemental and fsGroup", image: "www-data",
			psc:  &corev1.PodSecurityContext{SupplementalGroups: []int64{4000, 44}, FSGroup: ptr[int64](2000)},
			want: specs.User{UID: 33, GID: 33, AdditionalGids: []uint32{33, 44, 2000, 4000}}},
		{name: "strict policy skips /etc/group", image: "www-data",
			psc: &corev1.PodSecurityContext{SupplementalGroups: []int64{4000},
				SupplementalGroupsPolicy: ptr(corev1.SupplementalGroupsPolicyStrict)},
			want: specs.User{UID: 33, GID: 33, AdditionalGids: []uint32{33, 4000}}},
		{name: "nonroot ok", image: "nobody", psc: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true)},
			want: specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{65534}}},
		{name: "nonroot image root", psc: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true)},
			wantErr: "container has runAsNonRoot and image will run as root (pod: \"web_default(uid-1)\", container: main)", sentinel: ErrRunAsNonRoot},
		{name: "nonroot image named root", image: "root", sc: &corev1.SecurityContext{RunAsNonRoot: ptr(true)},
			wantErr: "image will run as root", sentinel: ErrRunAsNonRoot},
		{name: "nonroot runAsUser 0", sc: &corev1.SecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr[int64](0)},
			wantErr: "container's runAsUser breaks non-root policy", sentinel: ErrRunAsNonRoot},
		{name: "container disables pod nonroot", psc: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true)},
			sc: &corev1.SecurityContext{RunAsNonRoot: ptr(false)}, want: specs.User{AdditionalGids: []uint32{0}}},
		{name: "negative uid", sc: &corev1.SecurityContext{RunAsUser: ptr[int64](-1)},
			wantErr: "spec.containers[0].securityContext.runAsUser: -1 out of range", sentinel: ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput()
			in.Image.User = tc.image
			in.Pod.Spec.SecurityContext = tc.psc
			in.Container.SecurityContext = tc.sc
			if tc.noPasswd {
				in.Passwd, in.Group = nil, nil
			}
			got, err := resolveUser(in, "spec.containers[0]")
			wantErr(t, err, tc.wantErr, tc.sentinel)
			if tc.wantErr == "" && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParsePasswdSkipsJunk(t *testing.T) {
	got := parsePasswd([]byte("# comment\n\nbad\nx:x:notnum:0::/:\nok:x:5:6::/:/bin/sh\n"))
	if want := []passwdEntry{{name: "ok", uid: 5, gid: 6}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}
