package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Refresh brings the pod's configMap, secret, downwardAPI and projected
// volumes that Setup created up to date, as the kubelet's periodic sync
// does: each payload is rebuilt from Sources and the pod, and swapped in
// atomically only when it differs from what is on disk; service-account
// tokens are renewed once 80% of their lifetime has passed (so calling
// Refresh every minute or so keeps them valid). Volumes not set up yet,
// emptyDir and hostPath are left alone. A volume whose source fails keeps
// its old contents; the errors of all volumes are joined. Safe to call
// concurrently for different pods; the agent calls it periodically while
// the pod runs, never concurrently with Setup or Teardown of the same pod.
func (m *Manager) Refresh(ctx context.Context, podDir string, pod *corev1.Pod) error {
	var errs []error
	for i := range pod.Spec.Volumes {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("refresh volumes of pod %s: %w", podKey(pod), err)
		}
		v := &pod.Spec.Volumes[i]
		plugin := projectionPlugin(v)
		if plugin == "" {
			continue
		}
		if _, err := os.Lstat(filepath.Join(podDir, "volumes", plugin, v.Name)); errors.Is(err, os.ErrNotExist) {
			continue
		}
		var undo undoStack
		if _, err := m.setupProjection(ctx, podDir, pod, v, fmt.Sprintf("spec.volumes[%d]", i), &undo); err != nil {
			if uerr := undo.run(); uerr != nil {
				m.logger.Warn("volume refresh rollback failed", "pod", podKey(pod), "volume", v.Name, "err", uerr)
			}
			errs = append(errs, fmt.Errorf("refresh volume %q of pod %s: %w", v.Name, podKey(pod), err))
		}
	}
	return errors.Join(errs...)
}

// projectionPlugin is the plugin directory of a projection volume, or ""
// for other volume types.
func projectionPlugin(v *corev1.Volume) string {
	switch {
	case v.ConfigMap != nil:
		return PluginConfigMap
	case v.Secret != nil:
		return PluginSecret
	case v.DownwardAPI != nil:
		return PluginDownwardAPI
	case v.Projected != nil:
		return PluginProjected
	}
	return ""
}

// payloadCurrent reports whether dir already holds exactly payload (same
// files, contents and modes — with the group read bits an fsGroup adds —
// behind ..data, and every user-visible link), so a refresh can skip the
// swap. Any doubt answers false.
func payloadCurrent(dir string, payload map[string]fileProjection, pod *corev1.Pod) bool {
	target, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil || !strings.HasPrefix(target, "..") || strings.Contains(target, "/") {
		return false
	}
	ts := filepath.Join(dir, target)
	files := 0
	err = filepath.WalkDir(ts, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files++
		}
		return nil
	})
	if err != nil || files != len(payload) {
		return false
	}
	fsGroup := pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.FSGroup != nil
	for p, f := range payload {
		full := filepath.Join(ts, p)
		st, err := os.Lstat(full)
		if err != nil || !st.Mode().IsRegular() {
			return false
		}
		want := os.FileMode(f.mode) & os.ModePerm
		if fsGroup {
			want |= 0o440
		}
		if st.Mode().Perm() != want {
			return false
		}
		data, err := os.ReadFile(full)
		if err != nil || !bytes.Equal(data, f.data) {
			return false
		}
		first, _, _ := strings.Cut(filepath.Clean(p), "/")
		if _, err := os.Lstat(filepath.Join(dir, first)); err != nil {
			return false
		}
	}
	return true
}
