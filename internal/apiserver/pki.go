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
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, nil, err
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
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
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
