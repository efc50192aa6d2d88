package apiserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/peapod/peapod/internal/storage"
)

// The embedded etcd's PKI, laid out as kubeadm lays out its own:
//
//	<pki>/etcd/ca.crt, ca.key              the etcd CA (10 years)
//	<pki>/etcd/server.crt, server.key      the member's serving certificate
//	<pki>/apiserver-etcd-client.crt, .key  the API server's client certificate
//
// The etcd CA is not the cluster CA on purpose: the cluster CA signs the
// certificates of users and nodes, none of whom may read etcd; only what
// the etcd CA signed gets in. Keys are 0600 in 0700 directories, created
// once and reused; leaf certificates are reissued when they expire within
// 30 days, no longer match the CA, or (the serving one) miss a name.
const (
	etcdPKIDir         = "etcd"
	etcdCAName         = "ca"
	etcdServerName     = "server"
	etcdClientCertName = "apiserver-etcd-client"
	// EtcdClientUser is the CN of the API server's etcd client certificate.
	EtcdClientUser = "kube-apiserver-etcd-client"
)

// etcdServerSANs are the names on the member's serving certificate: the
// socket's file name (which etcd's clients verify for a unix endpoint),
// and localhost for tools that are told to expect it.
var etcdServerSANs = []string{storage.EmbeddedSocketName, "localhost", "127.0.0.1"}

// LoadOrCreateEtcdPKI returns the embedded etcd's TLS files under pkiDir,
// creating what is missing.
func LoadOrCreateEtcdPKI(pkiDir string) (storage.EmbeddedTLS, error) {
	dir := filepath.Join(pkiDir, etcdPKIDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return storage.EmbeddedTLS{}, fmt.Errorf("create etcd pki dir: %w", err)
	}
	ca, caKey, err := loadPair(dir, etcdCAName)
	if errors.Is(err, os.ErrNotExist) {
		ca, caKey, err = issue(dir, etcdCAName, certSpec{cn: "peapod-etcd-ca", isCA: true, years: 10}, nil, nil)
	}
	if err != nil {
		return storage.EmbeddedTLS{}, fmt.Errorf("etcd ca: %w", err)
	}
	srv, _, err := loadPair(dir, etcdServerName)
	if err != nil || !covers(srv, etcdServerSANs) || time.Until(srv.NotAfter) < 30*24*time.Hour || srv.CheckSignatureFrom(ca) != nil {
		if _, _, err := issue(dir, etcdServerName, certSpec{cn: "peapod-etcd", sans: etcdServerSANs, server: true, years: 1}, ca, caKey); err != nil {
			return storage.EmbeddedTLS{}, fmt.Errorf("etcd serving cert: %w", err)
		}
	}
	cli, _, err := loadPair(pkiDir, etcdClientCertName)
	if err != nil || time.Until(cli.NotAfter) < 30*24*time.Hour || cli.CheckSignatureFrom(ca) != nil {
		if _, _, err := issue(pkiDir, etcdClientCertName, certSpec{cn: EtcdClientUser, client: true, years: 1}, ca, caKey); err != nil {
			return storage.EmbeddedTLS{}, fmt.Errorf("etcd client cert: %w", err)
		}
	}
	return storage.EmbeddedTLS{
		CAFile:         filepath.Join(dir, etcdCAName+".crt"),
		ServerCertFile: filepath.Join(dir, etcdServerName+".crt"),
		ServerKeyFile:  filepath.Join(dir, etcdServerName+".key"),
		ClientCertFile: filepath.Join(pkiDir, etcdClientCertName+".crt"),
		ClientKeyFile:  filepath.Join(pkiDir, etcdClientCertName+".key"),
	}, nil
}
