package apiserver

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// Service-account identities and token defaults, as Kubernetes has them.
const (
	// DefaultServiceAccountIssuer is the iss of every token and the
	// audience a token must carry unless the request names another.
	DefaultServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	// ServiceAccountUserPrefix starts the user name of a service account:
	// system:serviceaccount:<namespace>:<name>.
	ServiceAccountUserPrefix = "system:serviceaccount:"
	// ServiceAccountsGroup holds every service account;
	// system:serviceaccounts:<namespace> those of one namespace.
	ServiceAccountsGroup = "system:serviceaccounts"
	// ServiceAccountKeyFile is the signing key's file name in <data-dir>/pki.
	ServiceAccountKeyFile = "sa.key"

	defaultTokenExpirationSeconds = 3600
	minTokenExpirationSeconds     = 600
	maxTokenExpirationSeconds     = 1 << 32
	// boundPodDeletedGrace is how long a token bound to a pod stays valid
	// after the pod's deletionTimestamp (Kubernetes: 60s).
	boundPodDeletedGrace = 60 * time.Second
)

// ServiceAccountUser returns the identity of service account ns/name.
func ServiceAccountUser(ns, name, uid string) User {
	return User{Name: ServiceAccountUserPrefix + ns + ":" + name, UID: uid,
		Groups: []string{ServiceAccountsGroup, ServiceAccountsGroup + ":" + ns, "system:authenticated"}}
}

// ServiceAccountOf returns the namespace and name of a service-account
// user, or ok=false for any other user.
func ServiceAccountOf(u User) (ns, name string, ok bool) {
	rest, found := strings.CutPrefix(u.Name, ServiceAccountUserPrefix)
	if !found {
		return "", "", false
	}
	ns, name, found = strings.Cut(rest, ":")
	if !found || ns == "" || name == "" || strings.Contains(name, ":") {
		return "", "", false
	}
	return ns, name, true
}

// LoadOrCreateServiceAccountKey returns the signing key in
// <pkiDir>/sa.key, generating a P-256 key (SEC 1 PEM, mode 0600; tokens are
// ES256, cheaper to sign than RS256) on first use. An RSA key written by an
// earlier peapod keeps being used (RS256). The file is written through a
// rename, so a crash never leaves half a key.
func LoadOrCreateServiceAccountKey(pkiDir string) (crypto.Signer, error) {
	path := filepath.Join(pkiDir, ServiceAccountKeyFile)
	data, err := os.ReadFile(path)
	if err == nil {
		return parseSigningKey(path, data)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read service-account key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate service-account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode service-account key: %w", err)
	}
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", pkiDir, err)
	}
	pemData := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pemData, 0o600); err != nil {
		return nil, fmt.Errorf("write service-account key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("write service-account key: %w", err)
	}
	return key, nil
}

// parseSigningKey reads an RSA (PKCS #1 or #8) or P-256 (SEC 1 or PKCS #8)
// private key.
func parseSigningKey(path string, data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("service-account key %s: no PEM block", path)
	}
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return checkedSigner(path, k)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("service-account key %s: %w", path, err)
	}
	return checkedSigner(path, k)
}

func checkedSigner(path string, k any) (crypto.Signer, error) {
	s, ok := k.(crypto.Signer)
	if !ok || jwsAlgorithm(s.Public()) == "" {
		return nil, fmt.Errorf("service-account key %s: a %T, want RSA or ECDSA P-256", path, k)
	}
	return s, nil
}

// saClaims are the claims of a service-account token, as Kubernetes'
// serviceaccount.Claims serialise them.
type saClaims struct {
	Issuer     string    `json:"iss"`
	Subject    string    `json:"sub"`
	Audience   []string  `json:"aud"`
	Expiry     int64     `json:"exp"`
	IssuedAt   int64     `json:"iat"`
	NotBefore  int64     `json:"nbf"`
	ID         string    `json:"jti,omitempty"`
	Kubernetes k8sClaims `json:"kubernetes.io"`
}

// k8sClaims is the private "kubernetes.io" claim.
type k8sClaims struct {
	Namespace      string     `json:"namespace"`
	ServiceAccount objectRef  `json:"serviceaccount"`
	Pod            *objectRef `json:"pod,omitempty"`
	Node           *objectRef `json:"node,omitempty"`
}

type objectRef struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// tokenSpec is what one token is issued for.
type tokenSpec struct {
	ServiceAccount *corev1.ServiceAccount
	Audiences      []string
	TTL            time.Duration
	// Pod and Node are the bound objects (both optional; Node only with Pod).
	Pod  *corev1.Pod
	Node *objectRef
}

// ServiceAccountTokens issues and verifies service-account tokens (ES256
// or RS256 JWTs) with one key. Safe for concurrent use; not modified after
// construction.
type ServiceAccountTokens struct {
	issuer string
	key    crypto.Signer
	kid    string
	now    func() time.Time
}

// NewServiceAccountTokens returns an issuer signing with key; issuer ""
// means DefaultServiceAccountIssuer and now nil means time.Now.
func NewServiceAccountTokens(key crypto.Signer, issuer string, now func() time.Time) (*ServiceAccountTokens, error) {
	if jwsAlgorithm(key.Public()) == "" {
		return nil, fmt.Errorf("service-account key: a %T, want RSA or ECDSA P-256", key)
	}
	kid, err := keyID(key.Public())
	if err != nil {
		return nil, err
	}
	if issuer == "" {
		issuer = DefaultServiceAccountIssuer
	}
	if now == nil {
		now = time.Now
	}
	return &ServiceAccountTokens{issuer: issuer, key: key, kid: kid, now: now}, nil
}

// Issuer is the iss claim (and default audience) of the tokens.
func (t *ServiceAccountTokens) Issuer() string { return t.issuer }

// issue signs a token for spec and returns it with its expiry.
func (t *ServiceAccountTokens) issue(spec tokenSpec) (string, time.Time, error) {
	now := t.now().Truncate(time.Second)
	exp := now.Add(spec.TTL)
	sa := spec.ServiceAccount
	c := saClaims{
		Issuer: t.issuer, Subject: ServiceAccountUserPrefix + sa.Namespace + ":" + sa.Name,
		Audience: spec.Audiences, Expiry: exp.Unix(), IssuedAt: now.Unix(), NotBefore: now.Unix(),
		ID: string(uuid.NewUUID()),
		Kubernetes: k8sClaims{Namespace: sa.Namespace,
			ServiceAccount: objectRef{Name: sa.Name, UID: string(sa.UID)}},
	}
	if spec.Pod != nil {
		c.Kubernetes.Pod = &objectRef{Name: spec.Pod.Name, UID: string(spec.Pod.UID)}
		c.Kubernetes.Node = spec.Node
	}
	tok, err := signJWT(t.key, t.kid, c)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token for %s/%s: %w", sa.Namespace, sa.Name, err)
	}
	return tok, exp, nil
}

// verify checks a token's signature, issuer, time window and audience
// (one of audiences must be in aud) and returns its claims. It does not
// look at stored objects.
func (t *ServiceAccountTokens) verify(tok string, audiences []string) (*saClaims, error) {
	var c saClaims
	if err := verifyJWT(tok, t.key.Public(), &c); err != nil {
		return nil, err
	}
	if c.Issuer != t.issuer {
		return nil, fmt.Errorf("token issuer %q is not %q", c.Issuer, t.issuer)
	}
	now := t.now().Unix()
	const leeway = 60 // seconds of clock skew, as Kubernetes allows
	if c.Expiry == 0 || now > c.Expiry+leeway {
		return nil, errors.New("service account token has expired")
	}
	if c.NotBefore != 0 && now+leeway < c.NotBefore {
		return nil, errors.New("service account token is not valid yet")
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(audiences, a) }) {
		return nil, fmt.Errorf("token audiences %q do not include %q", c.Audience, audiences)
	}
	ns, name, ok := ServiceAccountOf(User{Name: c.Subject})
	if !ok || ns != c.Kubernetes.Namespace || name != c.Kubernetes.ServiceAccount.Name {
		return nil, errors.New("service account token claims are inconsistent")
	}
	return &c, nil
}

// ServiceAccountObjects reads the objects a token is checked against. A
// missing object is an API NotFound error. Implementations must be safe for
// concurrent use.
type ServiceAccountObjects interface {
	ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)
	Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
}

// ServiceAccountTokenAuthenticator accepts "Authorization: Bearer <jwt>"
// for tokens of Tokens: signature, issuer, expiry and audience are checked
// (one of Audiences, default the issuer), then that the service account
// still exists with the token's uid and, for a token bound to a pod, that
// the pod exists with the token's uid (and was not deleted more than 60s
// ago). The user is system:serviceaccount:<ns>:<name> in groups
// system:serviceaccounts, system:serviceaccounts:<ns> and
// system:authenticated. Bearer tokens that are not JWTs of this issuer are
// left to other authenticators.
type ServiceAccountTokenAuthenticator struct {
	Tokens    *ServiceAccountTokens
	Audiences []string
	Objects   ServiceAccountObjects
}

var _ Authenticator = (*ServiceAccountTokenAuthenticator)(nil)

// Authenticate implements Authenticator.
func (s *ServiceAccountTokenAuthenticator) Authenticate(r *http.Request) (User, bool, error) {
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	if !found || !looksLikeJWT(tok) {
		return User{}, false, nil
	}
	var peek saClaims
	if _, err := parseJWTUnverified(tok, &peek); err != nil || peek.Issuer != s.Tokens.issuer {
		return User{}, false, nil
	}
	u, err := s.authenticateToken(r.Context(), tok)
	if err != nil {
		return User{}, false, err
	}
	return u, true, nil
}

func (s *ServiceAccountTokenAuthenticator) authenticateToken(ctx context.Context, tok string) (User, error) {
	auds := s.Audiences
	if len(auds) == 0 {
		auds = []string{s.Tokens.issuer}
	}
	c, err := s.Tokens.verify(tok, auds)
	if err != nil {
		return User{}, err
	}
	k := c.Kubernetes
	sa, err := s.Objects.ServiceAccount(ctx, k.Namespace, k.ServiceAccount.Name)
	if apierrors.IsNotFound(err) {
		return User{}, fmt.Errorf("service account %s/%s has been deleted", k.Namespace, k.ServiceAccount.Name)
	}
	if err != nil {
		return User{}, fmt.Errorf("look up service account %s/%s: %w", k.Namespace, k.ServiceAccount.Name, err)
	}
	if k.ServiceAccount.UID != "" && string(sa.UID) != k.ServiceAccount.UID {
		return User{}, fmt.Errorf("service account uid of %s/%s differs from the token's", k.Namespace, sa.Name)
	}
	if k.Pod != nil {
		pod, err := s.Objects.Pod(ctx, k.Namespace, k.Pod.Name)
		if apierrors.IsNotFound(err) {
			return User{}, fmt.Errorf("pod %s/%s the token is bound to has been deleted", k.Namespace, k.Pod.Name)
		}
		if err != nil {
			return User{}, fmt.Errorf("look up pod %s/%s: %w", k.Namespace, k.Pod.Name, err)
		}
		if string(pod.UID) != k.Pod.UID {
			return User{}, fmt.Errorf("pod %s/%s the token is bound to has been deleted (uid differs)", k.Namespace, k.Pod.Name)
		}
		if dt := pod.DeletionTimestamp; dt != nil && dt.Time.Before(s.Tokens.now().Add(-boundPodDeletedGrace)) {
			return User{}, fmt.Errorf("pod %s/%s the token is bound to is being deleted", k.Namespace, k.Pod.Name)
		}
	}
	return ServiceAccountUser(k.Namespace, sa.Name, string(sa.UID)), nil
}

// apiObjects reads service accounts and pods from the API's storage.
type apiObjects struct{ a *api }

var _ ServiceAccountObjects = apiObjects{}

func (o apiObjects) ServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	obj, _, err := o.a.getObject(ctx, o.a.resourceFor("", "v1", "serviceaccounts"), ns, name)
	if err != nil {
		return nil, err
	}
	sa, ok := obj.(*corev1.ServiceAccount)
	if !ok {
		return nil, fmt.Errorf("stored serviceaccount is a %T", obj)
	}
	return sa, nil
}

func (o apiObjects) Pod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	obj, _, err := o.a.getObject(ctx, o.a.resourceFor("", "v1", "pods"), ns, name)
	if err != nil {
		return nil, err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("stored pod is a %T", obj)
	}
	return pod, nil
}
