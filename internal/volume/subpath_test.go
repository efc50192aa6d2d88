package volume

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSubPath(t *testing.T) {
	outside := tempDir(t)
	vol := filepath.Join(tempDir(t), "vol")
	if err := os.Mkdir(vol, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(vol, 0o750); err != nil {
		t.Fatal(err)
	}
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(vol, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk("exists/inner")
	if err := os.WriteFile(filepath.Join(vol, "exists/file.conf"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"in-link":       "exists/inner",     // relative, stays inside
		"up-in-link":    "exists/../exists", // relative with .., stays inside
		"out-rel":       "../../../../../../../..",
		"out-abs":       outside,
		"abs-to-inside": filepath.Join(vol, "exists"), // absolute: refused even though inside
		"exists/up":     "../../",                     // one level too many
		"proc":          "/proc/self/root",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(vol, name)); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name, sub string
		want      string // relative to vol; "" means vol itself
		escape    bool
		wantErr   bool
	}{
		{name: "empty", sub: "", want: ""},
		{name: "dot", sub: ".", want: ""},
		{name: "existing dir", sub: "exists/inner", want: "exists/inner"},
		{name: "existing file", sub: "exists/file.conf", want: "exists/file.conf"},
		{name: "created", sub: "new/deeper/dir", want: "new/deeper/dir"},
		{name: "through inside link", sub: "in-link", want: "exists/inner"},
		{name: "inside link with ..", sub: "up-in-link/inner", want: "exists/inner"},
		{name: "created under inside link", sub: "in-link/made", want: "exists/inner/made"},
		{name: "dotdot", sub: "../x", escape: true},
		{name: "dotdot in middle", sub: "exists/../../x", escape: true},
		{name: "absolute", sub: "/etc", wantErr: true},
		{name: "relative link out", sub: "out-rel", escape: true},
		{name: "relative link out then create", sub: "out-rel/tmp/pp-created", escape: true},
		{name: "absolute link out", sub: "out-abs", escape: true},
		{name: "absolute link out then create", sub: "out-abs/made", escape: true},
		{name: "absolute link to inside", sub: "abs-to-inside", escape: true},
		{name: "nested link up", sub: "exists/up", escape: true},
		{name: "magic link", sub: "proc", escape: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SubPath(vol, tc.sub)
			switch {
			case tc.escape:
				if !errors.Is(err, ErrSubPathEscape) {
					t.Fatalf("SubPath(%q) = %q, %v; want ErrSubPathEscape", tc.sub, got, err)
				}
				return
			case tc.wantErr:
				if err == nil {
					t.Fatalf("SubPath(%q) = %q, want error", tc.sub, got)
				}
				return
			case err != nil:
				t.Fatalf("SubPath(%q): %v", tc.sub, err)
			}
			want := filepath.Join(vol, tc.want)
			if got != want {
				t.Errorf("SubPath(%q) = %q, want %q", tc.sub, got, want)
			}
		})
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("escape attempts created %v outside the volume", entries)
	}
	if _, err := os.Stat("/tmp/pp-created"); err == nil {
		t.Errorf("escape created /tmp/pp-created")
		os.Remove("/tmp/pp-created")
	}
	// Created directories take the volume root's mode.
	for _, p := range []string{"new", "new/deeper", "new/deeper/dir"} {
		st, err := os.Stat(filepath.Join(vol, p))
		if err != nil || st.Mode().Perm() != 0o750 {
			t.Errorf("%s: %v %v, want 0750", p, st, err)
		}
	}
}
