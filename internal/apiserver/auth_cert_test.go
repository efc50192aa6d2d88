package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
)

// A chain the TLS handshake verified to one of the roots authenticates
// without a second verification; any other chain is verified in full, so a
// handshake against other roots, or none, cannot vouch for a client.
func TestCertAuthenticatorTrustsHandshakeOnlyForItsRoots(t *testing.T) {
	ca, caKey, err := newCert(certSpec{cn: "ca", isCA: true, years: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, otherKey, err := newCert(certSpec{cn: "other", isCA: true, years: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _, err := newCert(certSpec{cn: "alice", orgs: []string{"devs"}, client: true, years: 1}, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := newCert(certSpec{cn: "mallory", client: true, years: 1}, other, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	authn := CertAuthenticator{Roots: roots}
	req := func(cs tls.ConnectionState) *http.Request { return &http.Request{TLS: &cs} }

	for name, tc := range map[string]struct {
		cs   tls.ConnectionState
		want string
	}{
		"verified by the handshake":     {tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf, ca}}}, "alice"},
		"not verified by the handshake": {tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}, "alice"},
		"verified against other roots":  {tls.ConnectionState{PeerCertificates: []*x509.Certificate{forged}, VerifiedChains: [][]*x509.Certificate{{forged, other}}}, ""},
		"chain of another leaf":         {tls.ConnectionState{PeerCertificates: []*x509.Certificate{forged}, VerifiedChains: [][]*x509.Certificate{{leaf, ca}}}, ""},
	} {
		u, ok, err := authn.Authenticate(req(tc.cs))
		if tc.want == "" {
			if ok || err == nil {
				t.Errorf("%s: authenticated as %q, want an error", name, u.Name)
			}
			continue
		}
		if !ok || err != nil || u.Name != tc.want || len(u.Groups) != 1 || u.Groups[0] != "devs" {
			t.Errorf("%s: got %+v, %v, %v; want %s in devs", name, u, ok, err, tc.want)
		}
	}
}
