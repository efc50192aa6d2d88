package apiserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// PKI is the cluster's certificate authority and the credentials derived
// from it, kept as PEM files in one directory.
type PKI struct {
	Dir    string
	CA     *x509.Certificate
	CAKey  *ecdsa.PrivateKey
	CAPEM  []byte
	Pool   *x509.CertPool
	Server tls.Certificate
	// AdminCertPEM and AdminKeyPEM authenticate as CN=admin, O=system:masters.
	AdminCertPEM, AdminKeyPEM []byte
	// KubeletClient is the API server's client certificate towards node
	// agents: CN=kube-apiserver-kubelet-client, O=system:masters.
	KubeletClient tls.Certificate
}

// LoadOrCreatePKI reads the CA, serving and admin credentials from dir,
// creating what is missing. The serving certificate is reissued when it
// does not cover every name in sans or expires within 30 days. Safe to call
// on every start; not safe for concurrent callers on the same dir.
func LoadOrCreatePKI(dir string, sans []string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pki dir: %w", err)
	}
	p := &PKI{Dir: dir}
	ca, caKey, err := loadPair(dir, "ca")
	if errors.Is(err, os.ErrNotExist) {
		ca, caKey, err = issue(dir, "ca", certSpec{cn: "peapod-ca", isCA: true, years: 10}, nil, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	p.CA, p.CAKey = ca, caKey
	p.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	p.Pool = x509.NewCertPool()
	p.Pool.AddCert(ca)

	srv, _, err := loadPair(dir, "apiserver")
	if err != nil || !covers(srv, sans) || time.Until(srv.NotAfter) < 30*24*time.Hour || srv.CheckSignatureFrom(ca) != nil {
		if _, _, err := issue(dir, "apiserver", certSpec{cn: "peapod-apiserver", sans: sans, server: true, years: 1}, ca, caKey); err != nil {
			return nil, fmt.Errorf("serving cert: %w", err)
		}
	}
	p.Server, err = tls.LoadX509KeyPair(filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key"))
	if err != nil {
		return nil, fmt.Errorf("load serving cert: %w", err)
	}
	if _, _, err := loadPair(dir, "admin"); err != nil {
		if _, _, err := issue(dir, "admin", certSpec{cn: "admin", orgs: []string{"system:masters"}, client: true, years: 1}, ca, caKey); err != nil {
			return nil, fmt.Errorf("admin cert: %w", err)
		}
	}
	if p.AdminCertPEM, err = os.ReadFile(filepath.Join(dir, "admin.crt")); err != nil {
		return nil, err
	}
	if p.AdminKeyPEM, err = os.ReadFile(filepath.Join(dir, "admin.key")); err != nil {
		return nil, err
	}
	kc, _, err := loadPair(dir, kubeletClientName)
	if err != nil || time.Until(kc.NotAfter) < 30*24*time.Hour || kc.CheckSignatureFrom(ca) != nil {
		if _, _, err := issue(dir, kubeletClientName, certSpec{cn: KubeletClientUser, orgs: []string{"system:masters"}, client: true, years: 1}, ca, caKey); err != nil {
			return nil, fmt.Errorf("kubelet client cert: %w", err)
		}
	}
	p.KubeletClient, err = tls.LoadX509KeyPair(filepath.Join(dir, kubeletClientName+".crt"), filepath.Join(dir, kubeletClientName+".key"))
	if err != nil {
		return nil, fmt.Errorf("load kubelet client cert: %w", err)
	}
	return p, nil
}

// IssueClientCert signs a client certificate for user with groups (for
// node agents and tests); it returns PEM cert and key.
func (p *PKI) IssueClientCert(user string, groups []string) (certPEM, keyPEM []byte, err error) {
	cert, key, err := newCert(certSpec{cn: user, orgs: groups, client: true, years: 1}, p.CA, p.CAKey)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// KubeletClientUser is the CN the API server presents to node agents.
const KubeletClientUser = "kube-apiserver-kubelet-client"

const kubeletClientName = "apiserver-kubelet-client"

// IssueServingCert signs a TLS serving certificate (server auth only) for
// the given DNS names and IPs, valid one year; it returns PEM cert and key.
// Node agents serve logs, exec, attach and port-forward with it, and the
// API server verifies it against the cluster CA. Safe for concurrent use.
func (p *PKI) IssueServingCert(names []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	sans := append([]string{}, names...)
	for _, ip := range ips {
		sans = append(sans, ip.String())
	}
	if len(sans) == 0 {
		return nil, nil, errors.New("issue serving cert: no names or IPs")
	}
	cn := sans[0]
	cert, key, err := newCert(certSpec{cn: cn, sans: sans, server: true, years: 1}, p.CA, p.CAKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issue serving cert %s: %w", cn, err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// signCSR signs a certificate for csr's public key with spec's subject,
// usages and SANs (the CSR's own subject and SANs are ignored: the caller
// decides them). It returns the PEM certificate.
func (p *PKI) signCSR(csr *x509.CertificateRequest, spec certSpec) ([]byte, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("check CSR signature: %w", err)
	}
	cert, err := signCert(spec, csr.PublicKey, p.CA, p.CAKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), nil
}

type certSpec struct {
	cn             string
	orgs           []string
	sans           []string
	isCA           bool
	server, client bool
	years          int
}

func covers(c *x509.Certificate, sans []string) bool {
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(c.DNSNames, s) {
			return false
		}
	}
	return true
}

func newCert(spec certSpec, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		// Self-signed: the new key signs its own certificate.
		parentKey = key
	}
	cert, err := signCert(spec, &key.PublicKey, parent, parentKey)
	return cert, key, err
}

// signCert signs a certificate for pub; a nil parent makes it self-signed
// (parentKey must then be pub's private key).
func signCert(spec certSpec, pub any, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.cn, Organization: spec.orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(spec.years, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if spec.isCA {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	if spec.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if spec.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, s := range spec.sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// issue creates <name>.crt and <name>.key in dir.
func issue(dir, name string, spec certSpec, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cert, key, err := newCert(spec, parent, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %s: %w", name, err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func loadPair(dir, name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, name+".crt")); errors.Is(statErr, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("load %s: %w", name, os.ErrNotExist)
		}
		return nil, nil, fmt.Errorf("load %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("load %s: not an ECDSA key", name)
	}
	return cert, key, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
