package volume

import (
	"context"

	corev1 "k8s.io/api/core/v1"
)

func (m *Manager) setupProjection(ctx context.Context, podDir string, pod *corev1.Pod, v *corev1.Volume, fld string, undo *undoStack) (string, error) {
	return "", unsupported(v, fld)
}
