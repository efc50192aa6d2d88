package volume

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
)

const (
	// defaultTokenSeconds is a serviceAccountToken source's default
	// expirationSeconds (the API server defaults it too).
	defaultTokenSeconds = 3600
	// tokenMaxTTL: a token older than this is renewed whatever its
	// expiry, as the kubelet's token manager does.
	tokenMaxTTL = 24 * time.Hour
)

// tokenMode is the kubelet's file mode for a projected token: the volume's
// defaultMode when set, else 0600; 0600 when the pod has an fsGroup (which
// then adds group read: 0640).
func tokenMode(src *corev1.ProjectedVolumeSource, pod *corev1.Pod) int32 {
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		return 0o600
	}
	if src.DefaultMode != nil {
		return *src.DefaultMode
	}
	return 0o600
}

// tokenProjection adds the service-account token of one projected source
// to payload at its path: the token already in dir is kept while it is
// still fresh for this pod (see tokenFresh), otherwise a new one is asked
// for through Sources.Token, bound to the pod.
func (m *Manager) tokenProjection(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection, mode int32, dir, fld string, payload map[string]fileProjection) error {
	if m.sources == nil {
		return fmt.Errorf("%s: not supported yet: no token source configured", fld)
	}
	if err := validatePayloadPath(src.Path); err != nil {
		return fmt.Errorf("%s.path: %w", fld, err)
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	secs := int64(defaultTokenSeconds)
	if src.ExpirationSeconds != nil {
		secs = *src.ExpirationSeconds
	}
	var auds []string
	if src.Audience != "" {
		auds = []string{src.Audience}
	}
	if old, err := os.ReadFile(filepath.Join(dir, dataDirName, src.Path)); err == nil &&
		tokenFresh(string(old), pod, sa, auds, m.now()) {
		payload[src.Path] = fileProjection{data: old, mode: mode}
		return nil
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         auds,
		ExpirationSeconds: &secs,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID},
	}}
	tok, err := m.sources.Token(ctx, pod.Namespace, sa, req)
	if err != nil {
		return fmt.Errorf("%s: request token for service account %s/%s: %w", fld, pod.Namespace, sa, err)
	}
	if tok == "" {
		return fmt.Errorf("%s: empty token for service account %s/%s", fld, pod.Namespace, sa)
	}
	payload[src.Path] = fileProjection{data: []byte(tok), mode: mode}
	return nil
}

// tokenClaims are the claims tokenFresh reads (unverified: the token came
// from the API server and only its timing and binding matter here).
type tokenClaims struct {
	Audience   audience `json:"aud"`
	Expiry     int64    `json:"exp"`
	IssuedAt   int64    `json:"iat"`
	Kubernetes struct {
		ServiceAccount struct {
			Name string `json:"name"`
		} `json:"serviceaccount"`
		Pod *struct {
			UID string `json:"uid"`
		} `json:"pod"`
	} `json:"kubernetes.io"`
}

// audience is the JWT aud claim: a string or a list of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// tokenFresh reports whether tok, a JWT issued for this pod's service
// account sa, bound to this pod (by uid) and for audiences (any audience
// when none is requested: the server picked its default), may still be
// used at now: less than 80% of its lifetime (iat to exp) and less than
// 24h have passed, as the kubelet's token manager decides. Tokens that are
// not JWTs are never fresh. Pure.
func tokenFresh(tok string, pod *corev1.Pod, sa string, audiences []string, now time.Time) bool {
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 {
		return false
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var c tokenClaims
	if err := json.Unmarshal(body, &c); err != nil || c.Expiry <= c.IssuedAt || c.IssuedAt == 0 {
		return false
	}
	if c.Kubernetes.ServiceAccount.Name != sa || c.Kubernetes.Pod == nil || c.Kubernetes.Pod.UID != string(pod.UID) {
		return false
	}
	if len(audiences) > 0 && !slices.Equal([]string(c.Audience), audiences) {
		return false
	}
	iat, exp := time.Unix(c.IssuedAt, 0), time.Unix(c.Expiry, 0)
	rotateAt := iat.Add(exp.Sub(iat) * 8 / 10)
	if maxAt := iat.Add(tokenMaxTTL); maxAt.Before(rotateAt) {
		rotateAt = maxAt
	}
	return now.Before(rotateAt)
}
