package apiserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Bootstrap tokens, stored as Kubernetes stores them: a Secret named
// bootstrap-token-<id> of type bootstrap.kubernetes.io/token in
// kube-system, holding token-id, token-secret, expiration and usage keys.
const (
	BootstrapTokenSecretPrefix = "bootstrap-token-"
	BootstrapTokenType         = corev1.SecretType("bootstrap.kubernetes.io/token")
	BootstrappersGroup         = "system:bootstrappers"
	bootstrapUserPrefix        = "system:bootstrap:"
	// joinTokenPrefix starts a join token that carries the CA hash, as k3s
	// prints them: K10<sha256 hex of the CA certificate>::<id>.<secret>.
	joinTokenPrefix = "K10"
)

var bootstrapTokenRE = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

// GenerateBootstrapToken returns a random token id ([a-z0-9]{6}) and
// secret ([a-z0-9]{16}).
func GenerateBootstrapToken() (id, secret string, err error) {
	if id, err = randomToken(6); err != nil {
		return "", "", err
	}
	if secret, err = randomToken(16); err != nil {
		return "", "", err
	}
	return id, secret, nil
}

func randomToken(n int) (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", fmt.Errorf("generate token: %w", err)
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b), nil
}

// CAHash is the hex SHA-256 of the first certificate's DER in caPEM; join
// tokens carry it so a joining node can trust the CA it downloads.
func CAHash(caPEM []byte) (string, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("CA hash: no PEM certificate")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return "", fmt.Errorf("CA hash: %w", err)
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:]), nil
}

// FormatJoinToken returns K10<CAHash(caPEM)>::<id>.<secret>.
func FormatJoinToken(caPEM []byte, id, secret string) (string, error) {
	h, err := CAHash(caPEM)
	if err != nil {
		return "", err
	}
	return joinTokenPrefix + h + "::" + id + "." + secret, nil
}

// ParseJoinToken splits a join token. It accepts the full form
// K10<hash>::<id>.<secret> and a bare <id>.<secret> (caHash is then
// empty and the caller must know the CA some other way).
func ParseJoinToken(token string) (caHash, bootstrapToken string, err error) {
	token = strings.TrimSpace(token)
	if rest, ok := strings.CutPrefix(token, joinTokenPrefix); ok {
		h, bt, found := strings.Cut(rest, "::")
		if !found || len(h) != 64 {
			return "", "", errors.New("parse join token: want K10<sha256>::<id>.<secret>")
		}
		if _, err := hex.DecodeString(h); err != nil {
			return "", "", fmt.Errorf("parse join token: CA hash: %w", err)
		}
		caHash, token = strings.ToLower(h), bt
	}
	if !bootstrapTokenRE.MatchString(token) {
		return "", "", errors.New("parse join token: bootstrap token must match [a-z0-9]{6}.[a-z0-9]{16}")
	}
	return caHash, token, nil
}

// BootstrapTokenSecret builds the Secret for token id/secret expiring at
// expires (zero: never).
func BootstrapTokenSecret(id, secret string, expires time.Time, description string) *corev1.Secret {
	data := map[string][]byte{
		"token-id":                       []byte(id),
		"token-secret":                   []byte(secret),
		"usage-bootstrap-authentication": []byte("true"),
		"usage-bootstrap-signing":        []byte("true"),
		"auth-extra-groups":              []byte("system:bootstrappers:peapod:default-node-token"),
	}
	if !expires.IsZero() {
		data["expiration"] = []byte(expires.UTC().Format(time.RFC3339))
	}
	if description != "" {
		data["description"] = []byte(description)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: BootstrapTokenSecretPrefix + id, Namespace: metav1.NamespaceSystem},
		Type:       BootstrapTokenType,
		Data:       data,
	}
}

// CreateJoinToken stores a new bootstrap token through client (which must
// be allowed to create Secrets in kube-system) and returns the join token
// K10<CA hash>::<id>.<secret> for `peapod agent --token`. ttl <= 0 means
// the token never expires.
func CreateJoinToken(ctx context.Context, client kubernetes.Interface, caPEM []byte, ttl time.Duration) (string, error) {
	id, secret, err := GenerateBootstrapToken()
	if err != nil {
		return "", err
	}
	var expires time.Time
	if ttl > 0 {
		expires = time.Now().Add(ttl)
	}
	s := BootstrapTokenSecret(id, secret, expires, "peapod join token")
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create bootstrap token %s: %w", id, err)
	}
	return FormatJoinToken(caPEM, id, secret)
}

// CreateJoinTokenFromKubeconfig is CreateJoinToken with the client and CA
// taken from an admin kubeconfig file (what `peapod token create` calls
// with <data-dir>/admin.kubeconfig).
func CreateJoinTokenFromKubeconfig(ctx context.Context, kubeconfig string, ttl time.Duration) (string, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return "", fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	caPEM := cfg.TLSClientConfig.CAData
	if len(caPEM) == 0 && cfg.TLSClientConfig.CAFile != "" {
		if caPEM, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
			return "", fmt.Errorf("read CA: %w", err)
		}
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", fmt.Errorf("client for %s: %w", kubeconfig, err)
	}
	return CreateJoinToken(ctx, client, caPEM, ttl)
}

// BootstrapTokenAuthenticator accepts "Authorization: Bearer <id>.<secret>"
// for unexpired bootstrap-token Secrets with
// usage-bootstrap-authentication=true, as user system:bootstrap:<id> in
// groups system:bootstrappers plus the Secret's auth-extra-groups. Bearer
// tokens of another shape are left to other authenticators.
type BootstrapTokenAuthenticator struct {
	// Lookup returns the Secret kube-system/bootstrap-token-<id>; a
	// NotFound API error means no such token.
	Lookup func(ctx context.Context, id string) (*corev1.Secret, error)
	// Now defaults to time.Now.
	Now func() time.Time
}

// Authenticate implements Authenticator.
func (b BootstrapTokenAuthenticator) Authenticate(r *http.Request) (User, bool, error) {
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found {
		return User{}, false, nil
	}
	m := bootstrapTokenRE.FindStringSubmatch(strings.TrimSpace(tok))
	if m == nil {
		return User{}, false, nil
	}
	s, err := b.Lookup(r.Context(), m[1])
	if apierrors.IsNotFound(err) {
		return User{}, false, errors.New("invalid bootstrap token")
	}
	if err != nil {
		return User{}, false, fmt.Errorf("look up bootstrap token %s: %w", m[1], err)
	}
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	return checkBootstrapSecret(s, m[1], m[2], now())
}

// checkBootstrapSecret validates a presented token against its Secret.
func checkBootstrapSecret(s *corev1.Secret, id, secret string, now time.Time) (User, bool, error) {
	invalid := errors.New("invalid bootstrap token")
	if s.Type != BootstrapTokenType || s.DeletionTimestamp != nil || string(s.Data["token-id"]) != id {
		return User{}, false, invalid
	}
	if subtle.ConstantTimeCompare(s.Data["token-secret"], []byte(secret)) != 1 {
		return User{}, false, invalid
	}
	if string(s.Data["usage-bootstrap-authentication"]) != "true" {
		return User{}, false, invalid
	}
	if exp := string(s.Data["expiration"]); exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil || !now.Before(t) {
			return User{}, false, errors.New("bootstrap token expired")
		}
	}
	u := User{Name: bootstrapUserPrefix + id, Groups: []string{BootstrappersGroup}}
	for _, g := range strings.Split(string(s.Data["auth-extra-groups"]), ",") {
		if g = strings.TrimSpace(g); strings.HasPrefix(g, BootstrappersGroup+":") {
			u.Groups = append(u.Groups, g)
		}
	}
	return u, true, nil
}
