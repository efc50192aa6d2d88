package spec

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "B": "b c", "EMPTY": ""}
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)", "a"},
		{"x$(A)y$(B)z", "xay" + "b cz"},
		{"$(EMPTY)", ""},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"$$$(A)", "$a"},
		{"$$", "$"},
		{"$", "$"},
		{"a$", "a$"},
		{"$A", "$A"},
		{"$(A", "$(A"},
		{"$()", "$()"},
		{"100$ and $(A)", "100$ and a"},
	} {
		if got := expand(tc.in, vars); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCommand(t *testing.T) {
	img := ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"--img-cmd"}}
	for _, tc := range []struct {
		name    string
		c       corev1.Container
		img     ImageConfig
		want    []string
		wantErr string
	}{
		{name: "image only", img: img, want: []string{"/entry", "--img-cmd"}},
		{name: "args replace cmd", c: corev1.Container{Args: []string{"a"}}, img: img, want: []string{"/entry", "a"}},
		{name: "command drops image cmd", c: corev1.Container{Command: []string{"/bin/x"}}, img: img, want: []string{"/bin/x"}},
		{name: "command and args", c: corev1.Container{Command: []string{"/bin/x"}, Args: []string{"y"}}, img: img, want: []string{"/bin/x", "y"}},
		{name: "empty entrypoint marker", img: ImageConfig{Entrypoint: []string{""}, Cmd: []string{"sh"}}, want: []string{"sh"}},
		{name: "no entrypoint", img: ImageConfig{Cmd: []string{"sh", "-c", "true"}}, want: []string{"sh", "-c", "true"}},
		{name: "nothing", wantErr: "no command specified"},
		{name: "expansion", c: corev1.Container{
			Command: []string{"echo", "$(GREETING)", "$$(GREETING)", "$(FROM_FIELD)"},
			Args:    []string{"$(NAME)-$(MISSING)"},
			Env: []corev1.EnvVar{
				{Name: "NAME", Value: "bob"},
				{Name: "GREETING", Value: "hi $(NAME)"},
				{Name: "FROM_FIELD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			}}, want: []string{"echo", "hi bob", "$(GREETING)", "$(FROM_FIELD)", "bob-$(MISSING)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Command(&tc.c, tc.img)
			wantErr(t, err, tc.wantErr, ErrInvalid)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestBuildCommandSeesFullEnv checks that Build expands command args with
// fieldRef env vars too (the kubelet's full env), not the image env.
func TestBuildCommandSeesFullEnv(t *testing.T) {
	in := testInput()
	in.Container.Command = []string{"echo", "$(POD)", "$(IMG)"}
	in.Container.Env = []corev1.EnvVar{{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"echo", "web", "$(IMG)"}; !reflect.DeepEqual(s.Process.Args, want) {
		t.Fatalf("args %q, want %q", s.Process.Args, want)
	}
}
