package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
}

// Authenticator identifies the caller of a request. It returns ok=false
// when the request carries no credentials it recognises; an error means
// the credentials were present but invalid.
type Authenticator interface {
	Authenticate(r *http.Request) (user User, ok bool, err error)
}

// Attributes describe a request for authorization.
type Attributes struct {
	User        User
	Verb        string // get, list, watch, create, update, patch, delete, deletecollection
	Group       string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
	// Path is set for non-resource requests.
	Path string
}

// Authorizer decides whether a request may proceed. Node identities
// (system:node:<name> in group system:nodes) get their own Authorizer with
// the node-agent issue; compose it with Union.
type Authorizer interface {
	Authorize(ctx context.Context, a Attributes) (allowed bool, reason string, err error)
}

// MastersAuthorizer allows everything to members of system:masters and
// nothing to anyone else.
type MastersAuthorizer struct{}

// Authorize implements Authorizer.
func (MastersAuthorizer) Authorize(_ context.Context, a Attributes) (bool, string, error) {
	if slices.Contains(a.User.Groups, "system:masters") {
		return true, "", nil
	}
	return false, "", nil
}

// Union allows a request when any of its authorizers does.
type Union []Authorizer

// Authorize implements Authorizer.
func (u Union) Authorize(ctx context.Context, a Attributes) (bool, string, error) {
	var reasons []string
	for _, z := range u {
		ok, reason, err := z.Authorize(ctx, a)
		if err != nil {
			return false, "", err
		}
		if ok {
			return true, reason, nil
		}
		if reason != "" {
			reasons = append(reasons, reason)
		}
	}
	return false, strings.Join(reasons, "; "), nil
}

// CertAuthenticator accepts TLS client certificates signed by the CA:
// CN is the user name, O the groups.
type CertAuthenticator struct{ Roots *x509.CertPool }

// Authenticate implements Authenticator.
func (c CertAuthenticator) Authenticate(r *http.Request) (User, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return User{}, false, nil
	}
	leaf := r.TLS.PeerCertificates[0]
	user := User{Name: leaf.Subject.CommonName, Groups: leaf.Subject.Organization}
	if c.verifiedByTLS(r.TLS, leaf, time.Now()) {
		return user, true, nil
	}
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.Roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return User{}, false, fmt.Errorf("verify client certificate: %w", err)
	}
	return user, true, nil
}

// verifiedByTLS reports whether the TLS handshake already verified leaf
// up to one of c's roots, so a request on a kept-alive connection costs no
// signature checks. The handshake was at connect time: the leaf must still
// be valid now.
func (c CertAuthenticator) verifiedByTLS(cs *tls.ConnectionState, leaf *x509.Certificate, now time.Time) bool {
	if len(cs.VerifiedChains) == 0 || now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return false
	}
	chain := cs.VerifiedChains[0]
	if len(chain) == 0 || chain[0] != leaf {
		return false
	}
	// A certificate that is itself in Roots verifies by lookup, without a
	// signature check.
	root := chain[len(chain)-1]
	_, err := root.Verify(x509.VerifyOptions{Roots: c.Roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: now})
	return err == nil
}

// TokenAuthenticator accepts "Authorization: Bearer <token>" for the tokens
// it knows. Safe for concurrent reads; not modified after construction.
type TokenAuthenticator struct{ tokens map[string]User }

// NewTokenAuthenticator returns an authenticator for a fixed token table.
func NewTokenAuthenticator(tokens map[string]User) *TokenAuthenticator {
	return &TokenAuthenticator{tokens: tokens}
}

// LoadTokenFile reads a Kubernetes static token file: CSV lines of
// token,user,uid[,"group1,group2"].
func LoadTokenFile(path string) (*TokenAuthenticator, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open token file: %w", err)
	}
	defer f.Close()
	rd := csv.NewReader(f)
	rd.FieldsPerRecord = -1
	rd.Comment = '#'
	recs, err := rd.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("parse token file %s: %w", path, err)
	}
	tokens := map[string]User{}
	for i, rec := range recs {
		if len(rec) < 3 || rec[0] == "" || rec[1] == "" {
			return nil, fmt.Errorf("token file %s line %d: want token,user,uid[,groups]", path, i+1)
		}
		u := User{Name: rec[1], UID: rec[2]}
		if len(rec) > 3 && rec[3] != "" {
			u.Groups = strings.Split(rec[3], ",")
		}
		tokens[rec[0]] = u
	}
	return NewTokenAuthenticator(tokens), nil
}

// Authenticate implements Authenticator.
func (t *TokenAuthenticator) Authenticate(r *http.Request) (User, bool, error) {
	h := r.Header.Get("Authorization")
	tok, found := strings.CutPrefix(h, "Bearer ")
	if !found {
		return User{}, false, nil
	}
	u, ok := t.tokens[strings.TrimSpace(tok)]
	if !ok {
		return User{}, false, fmt.Errorf("invalid bearer token")
	}
	return u, true, nil
}

// Authenticators tries each authenticator in turn; the first that
// recognises the credentials decides.
type Authenticators []Authenticator

// Authenticate implements Authenticator.
func (as Authenticators) Authenticate(r *http.Request) (User, bool, error) {
	for _, a := range as {
		u, ok, err := a.Authenticate(r)
		if err != nil || ok {
			return u, ok, err
		}
	}
	return User{}, false, nil
}

type userKey struct{}

func withUser(ctx context.Context, u User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the authenticated user of a request context.
func UserFrom(ctx context.Context) (User, bool) {
	u, ok := ctx.Value(userKey{}).(User)
	return u, ok
}
