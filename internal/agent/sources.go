package agent

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/peapod/peapod/internal/volume"
)

// Sources reads what pods' volumes and env refer to from the API, with the
// node's own credentials: the node authorizer lets a node read only the
// ConfigMaps and Secrets its pods use, and ask tokens only for them.
type Sources struct{ client kubernetes.Interface }

var _ volume.Sources = Sources{}

// NewSources returns Sources reading through client.
func NewSources(client kubernetes.Interface) Sources { return Sources{client: client} }

// ConfigMap gets a ConfigMap; a missing one is the API's NotFound.
func (s Sources) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	return s.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
}

// Secret gets a Secret; a missing one is the API's NotFound.
func (s Sources) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	return s.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
}

// Token asks the API for a service account token (TokenRequest).
func (s Sources) Token(ctx context.Context, namespace, serviceAccount string, req *authenticationv1.TokenRequest) (string, error) {
	tr, err := s.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", namespace, serviceAccount, err)
	}
	return tr.Status.Token, nil
}

// PersistentVolumeClaim gets a pod's claim (the node authorizer allows
// the claims of the node's pods).
func (s Sources) PersistentVolumeClaim(ctx context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	return s.client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, name, metav1.GetOptions{})
}

// PersistentVolume gets a volume.
func (s Sources) PersistentVolume(ctx context.Context, name string) (*corev1.PersistentVolume, error) {
	return s.client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
}
