package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The external etcd's PKI, in <dir>/etcd-pki, laid out as kubeadm lays out
// an external etcd's: its own CA (not the cluster CA: nobody the cluster
// CA signs may read etcd), one certificate per member for both its client
// port and its peers (server and client auth, its address and localhost),
// and the API servers' client certificate.
const (
	etcdPKIDirName       = "etcd-pki"
	etcdCAName           = "ca"
	etcdClientName       = "apiserver-etcd-client"
	etcdClientCommonName = "kube-apiserver-etcd-client"
)

// EtcdTLS are the files a client of the cluster's etcd uses (the API
// servers' --etcd-cafile, --etcd-certfile, --etcd-keyfile; tests reach
// etcd with them too).
type EtcdTLS struct {
	CAFile, CertFile, KeyFile string
}

// EtcdClientTLS returns the client files of the cluster's external etcd;
// ok is false when the cluster has none.
func (s *State) EtcdClientTLS() (EtcdTLS, bool) {
	if s.EtcdPKI == "" {
		return EtcdTLS{}, false
	}
	return EtcdTLS{
		CAFile:   filepath.Join(s.EtcdPKI, etcdCAName+".crt"),
		CertFile: filepath.Join(s.EtcdPKI, etcdClientName+".crt"),
		KeyFile:  filepath.Join(s.EtcdPKI, etcdClientName+".key"),
	}, true
}

// memberCertName is the file name (without extension) of a member's
// certificate.
func memberCertName(member string) string { return "member-" + member }

// writeEtcdPKI creates dir (0700) with the CA, a certificate per member
// and the API servers' client certificate. Keys are 0600.
func writeEtcdPKI(dir string, members []Node) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("etcd pki: %w", err)
	}
	ca, caKey, err := writeCert(dir, etcdCAName, &x509.Certificate{
		Subject: pkix.Name{CommonName: "peapod-cluster-etcd-ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, nil, nil)
	if err != nil {
		return err
	}
	for _, m := range members {
		if _, _, err := writeCert(dir, memberCertName(m.Name), &x509.Certificate{
			Subject:     pkix.Name{CommonName: m.Name},
			DNSNames:    []string{m.Name, "localhost"},
			IPAddresses: []net.IP{net.ParseIP(m.Address), net.IPv4(127, 0, 0, 1)},
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}, ca, caKey); err != nil {
			return err
		}
	}
	_, _, err = writeCert(dir, etcdClientName, &x509.Certificate{
		Subject:     pkix.Name{CommonName: etcdClientCommonName},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	return err
}

// writeCert signs tmpl (self-signed when parent is nil) for a fresh P-256
// key, valid a year, and writes <name>.crt and <name>.key into dir.
func writeCert(dir, name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd pki %s: %w", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, nil, fmt.Errorf("etcd pki %s: %w", name, err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().AddDate(1, 0, 0)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd pki %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, nil, fmt.Errorf("etcd pki: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, fmt.Errorf("etcd pki: %w", err)
	}
	return cert, key, nil
}
