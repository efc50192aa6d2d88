package apiserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Files a node's credentials directory holds (JoinNode and
// Server.WriteNodeCredentials write them):
//
//	node.kubeconfig     the API server URL, CA and client certificate
//	                    CN=system:node:<name>, O=system:nodes (mode 0600)
//	ca.crt              the cluster CA; the agent's HTTPS server requires
//	                    client certificates signed by it (the API server
//	                    presents CN=kube-apiserver-kubelet-client)
//	node-serving.crt/key the agent's serving certificate for its IPs and name
const (
	NodeKubeconfigFile  = "node.kubeconfig"
	NodeCAFile          = "ca.crt"
	NodeServingCertFile = "node-serving.crt"
	NodeServingKeyFile  = "node-serving.key"
)

// renewBefore is how close to expiry a certificate is replaced.
const renewBefore = 30 * 24 * time.Hour

// JoinNode gives a node agent its credentials in dir and returns the path
// of <dir>/node.kubeconfig. Valid credentials already in dir for the same
// server, CA and node are reused without contacting the server (so a
// restarted agent needs no token); a serving certificate that misses one
// of the host's current IPs or nears expiry is renewed with the node's
// own client certificate.
//
// Otherwise the node joins with token: the full form
// K10<CA hash>::<id>.<secret> printed by `peapod token create`, or a bare
// <id>.<secret> when caPEM is given. With caPEM nil the CA is downloaded
// from serverURL/cacerts and accepted only if its hash matches the token's.
// Private keys are generated here and never leave the node.
func JoinNode(ctx context.Context, serverURL string, caPEM []byte, token, nodeName, dir string) (string, error) {
	serverURL = strings.TrimRight(serverURL, "/")
	return joinNode(ctx, serverURL, []string{serverURL}, caPEM, token, nodeName, dir)
}

// JoinNodeVia is JoinNode for a cluster of several servers: it joins (or
// renews) through the first of servers that answers, and reuses
// credentials from an earlier join through any of them (the servers share
// one CA, so one node credential serves them all). The kubeconfig names
// the server that was used.
func JoinNodeVia(ctx context.Context, servers []string, caPEM []byte, token, nodeName, dir string) (string, error) {
	if len(servers) == 0 {
		return "", errors.New("join node: no server given")
	}
	accept := make([]string, len(servers))
	for i, s := range servers {
		accept[i] = strings.TrimRight(s, "/")
	}
	// The server of an earlier join first: valid credentials for it are
	// reused without a round trip.
	order := append([]string(nil), accept...)
	if cfg, err := clientcmd.LoadFromFile(filepath.Join(dir, NodeKubeconfigFile)); err == nil {
		for _, c := range cfg.Clusters {
			if i := slices.Index(order, c.Server); i > 0 {
				order = append(append([]string{c.Server}, order[:i]...), order[i+1:]...)
			}
		}
	}
	var errs []error
	for _, s := range order {
		kubeconfig, err := joinNode(ctx, s, accept, caPEM, token, nodeName, dir)
		if err == nil {
			return kubeconfig, nil
		}
		errs = append(errs, fmt.Errorf("via %s: %w", s, err))
		if ctx.Err() != nil {
			break
		}
	}
	return "", errors.Join(errs...)
}

// joinNode joins through serverURL, reusing credentials already in dir
// for any server in accept.
func joinNode(ctx context.Context, serverURL string, accept []string, caPEM []byte, token, nodeName, dir string) (string, error) {
	if msgs := validation.IsDNS1123Subdomain(nodeName); len(msgs) > 0 {
		return "", fmt.Errorf("join node: invalid node name %q: %v", nodeName, msgs)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("join node %s: %w", nodeName, err)
	}
	kubeconfig := filepath.Join(dir, NodeKubeconfigFile)
	caHash, bootstrap := "", ""
	if token != "" {
		var err error
		if caHash, bootstrap, err = ParseJoinToken(token); err != nil {
			return "", fmt.Errorf("join node %s: %w", nodeName, err)
		}
	}
	sans := servingSANs(nodeName)
	cur, curErr := loadNodeCredentials(dir, accept, nodeName)
	if curErr == nil && caMatches(cur.caPEM, caPEM, caHash) {
		if cur.servingValid(sans) {
			return kubeconfig, nil
		}
		// Renew the serving certificate with the node's own identity.
		if err := requestServingCert(ctx, serverURL, cur.caPEM, &cur.client, nil, nodeName, sans, dir); err != nil {
			return "", fmt.Errorf("renew serving certificate of node %s: %w", nodeName, err)
		}
		return kubeconfig, nil
	}
	if bootstrap == "" {
		return "", fmt.Errorf("join node %s: no valid credentials in %s (%v) and no join token", nodeName, dir, curErr)
	}
	if caPEM == nil {
		if caHash == "" {
			return "", fmt.Errorf("join node %s: a bare token needs the CA; use the K10<hash>::<token> form", nodeName)
		}
		var err error
		if caPEM, err = fetchCA(ctx, serverURL, caHash); err != nil {
			return "", fmt.Errorf("join node %s: %w", nodeName, err)
		}
	} else if caHash != "" && !caMatches(caPEM, nil, caHash) {
		return "", fmt.Errorf("join node %s: the given CA does not match the token's CA hash", nodeName)
	}
	if err := requestServingCert(ctx, serverURL, caPEM, nil, &bootstrap, nodeName, sans, dir); err != nil {
		return "", fmt.Errorf("join node %s: %w", nodeName, err)
	}
	return kubeconfig, nil
}

// WriteNodeCredentials writes, in-process and without a token, the same
// files JoinNode writes, for an agent running inside this server
// (single-node mode); valid existing files are kept. It returns the
// kubeconfig path. The server URL is https://<Addr()>.
func (s *Server) WriteNodeCredentials(nodeName, dir string) (string, error) {
	serverURL := "https://" + s.Addr()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("node credentials for %s: %w", nodeName, err)
	}
	sans := servingSANs(nodeName)
	if cur, err := loadNodeCredentials(dir, []string{serverURL}, nodeName); err == nil && bytes.Equal(cur.caPEM, s.pki.CAPEM) && cur.servingValid(sans) {
		return filepath.Join(dir, NodeKubeconfigFile), nil
	}
	certPEM, keyPEM, err := s.pki.IssueClientCert(NodeUserPrefix+nodeName, []string{NodesGroup})
	if err != nil {
		return "", fmt.Errorf("node credentials for %s: %w", nodeName, err)
	}
	var names []string
	var ips []net.IP
	for _, n := range sans {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			names = append(names, n)
		}
	}
	sCert, sKey, err := s.pki.IssueServingCert(names, ips)
	if err != nil {
		return "", fmt.Errorf("node credentials for %s: %w", nodeName, err)
	}
	if err := writeNodeFiles(dir, serverURL, nodeName, s.pki.CAPEM, certPEM, keyPEM, sCert, sKey); err != nil {
		return "", fmt.Errorf("node credentials for %s: %w", nodeName, err)
	}
	return filepath.Join(dir, NodeKubeconfigFile), nil
}

// servingSANs are the names a node's serving certificate covers: its name
// (when a DNS name) and the host's unicast IPs.
func servingSANs(nodeName string) []string {
	var sans []string
	if len(validation.IsDNS1123Subdomain(nodeName)) == 0 {
		sans = append(sans, nodeName)
	}
	for _, a := range nodeAddresses() {
		if net.ParseIP(a) != nil {
			sans = append(sans, a)
		}
	}
	return dedupe(sans)
}

// nodeCredentials are the parsed contents of a credentials directory.
type nodeCredentials struct {
	caPEM   []byte
	client  tls.Certificate
	serving *x509.Certificate
}

// loadNodeCredentials reads dir and checks the kubeconfig names one of
// servers and carries a client certificate for nodeName that is not near
// expiry.
func loadNodeCredentials(dir string, servers []string, nodeName string) (*nodeCredentials, error) {
	cfg, err := clientcmd.LoadFromFile(filepath.Join(dir, NodeKubeconfigFile))
	if err != nil {
		return nil, err
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || cfg.Clusters[ctx.Cluster] == nil || cfg.AuthInfos[ctx.AuthInfo] == nil {
		return nil, errors.New("kubeconfig lacks its current context")
	}
	cluster, auth := cfg.Clusters[ctx.Cluster], cfg.AuthInfos[ctx.AuthInfo]
	if !slices.Contains(servers, cluster.Server) {
		return nil, fmt.Errorf("kubeconfig is for server %s", cluster.Server)
	}
	nc := &nodeCredentials{caPEM: cluster.CertificateAuthorityData}
	if nc.client, err = tls.X509KeyPair(auth.ClientCertificateData, auth.ClientKeyData); err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(nc.client.Certificate[0])
	if err != nil {
		return nil, err
	}
	if leaf.Subject.CommonName != NodeUserPrefix+nodeName || time.Until(leaf.NotAfter) < renewBefore {
		return nil, fmt.Errorf("client certificate is for %q until %s", leaf.Subject.CommonName, leaf.NotAfter)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(nc.caPEM) {
		return nil, errors.New("kubeconfig has no CA")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	if pair, err := tls.LoadX509KeyPair(filepath.Join(dir, NodeServingCertFile), filepath.Join(dir, NodeServingKeyFile)); err == nil {
		if c, err := x509.ParseCertificate(pair.Certificate[0]); err == nil {
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				nc.serving = c
			}
		}
	}
	return nc, nil
}

func (nc *nodeCredentials) servingValid(sans []string) bool {
	return nc.serving != nil && time.Until(nc.serving.NotAfter) >= renewBefore && covers(nc.serving, sans)
}

// caMatches checks have (the CA on disk) against what the caller trusts:
// the exact PEM when given, else the hash when given.
func caMatches(have, want []byte, wantHash string) bool {
	if want != nil {
		return bytes.Equal(bytes.TrimSpace(have), bytes.TrimSpace(want))
	}
	if wantHash != "" {
		h, err := CAHash(have)
		return err == nil && h == wantHash
	}
	return true
}

// fetchCA downloads the CA from serverURL/cacerts without trusting the
// server, and accepts it only when its hash is wantHash.
func fetchCA(ctx context.Context, serverURL, wantHash string) ([]byte, error) {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // authenticated by the hash below
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, serverURL+CACertsPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch CA: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch CA: %s: %v", resp.Status, err)
	}
	h, err := CAHash(data)
	if err != nil {
		return nil, fmt.Errorf("fetch CA: %w", err)
	}
	if h != wantHash {
		return nil, fmt.Errorf("fetch CA: the server's CA hash %s does not match the token's %s", h, wantHash)
	}
	return data, nil
}

// requestServingCert asks the join endpoint for certificates, as the
// bootstrap token (new client and serving certificates) or as the node
// (client: a new serving certificate only), and writes dir's files.
func requestServingCert(ctx context.Context, serverURL string, caPEM []byte, client *tls.Certificate, bootstrap *string, nodeName string, sans []string, dir string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no CA certificate")
	}
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if client != nil {
		tlsCfg.Certificates = []tls.Certificate{*client}
	}
	req := joinRequest{NodeName: nodeName}
	var clientKey *ecdsa.PrivateKey
	var err error
	if bootstrap != nil {
		if clientKey, req.ClientCSR, err = newCSR(NodeUserPrefix + nodeName); err != nil {
			return err
		}
	}
	servingKey, servingCSR, err := newCSR(NodeUserPrefix + nodeName)
	if err != nil {
		return err
	}
	req.ServingCSR = servingCSR
	for _, s := range sans {
		if net.ParseIP(s) != nil {
			req.ServingIPs = append(req.ServingIPs, s)
		} else {
			req.ServingNames = append(req.ServingNames, s)
		}
	}
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, serverURL+JoinPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if bootstrap != nil {
		hreq.Header.Set("Authorization", "Bearer "+*bootstrap)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	resp, err := hc.Do(hreq)
	if err != nil {
		return fmt.Errorf("join request: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("join request: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("join request: %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	var jr joinResponse
	if err := json.Unmarshal(data, &jr); err != nil {
		return fmt.Errorf("join response: %w", err)
	}
	sKey, err := marshalKey(servingKey)
	if err != nil {
		return err
	}
	var certPEM, keyPEM []byte
	if bootstrap != nil {
		if keyPEM, err = marshalKey(clientKey); err != nil {
			return err
		}
		certPEM = []byte(jr.ClientCert)
	} else {
		certPEM, keyPEM, err = encodePair(*client)
		if err != nil {
			return err
		}
	}
	return writeNodeFiles(dir, serverURL, nodeName, caPEM, certPEM, keyPEM, []byte(jr.ServingCert), sKey)
}

func newCSR(cn string) (*ecdsa.PrivateKey, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, "", fmt.Errorf("create CSR: %w", err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

func marshalKey(k *ecdsa.PrivateKey) ([]byte, error) {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b}), nil
}

func encodePair(c tls.Certificate) (certPEM, keyPEM []byte, err error) {
	k, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("client key is not ECDSA")
	}
	if keyPEM, err = marshalKey(k); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), keyPEM, nil
}

// writeNodeFiles writes a credentials directory; the kubeconfig goes last
// so that its presence means the rest is there.
func writeNodeFiles(dir, serverURL, nodeName string, caPEM, certPEM, keyPEM, servingCert, servingKey []byte) error {
	if err := writeFileAtomic(filepath.Join(dir, NodeCAFile), caPEM, 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, NodeServingKeyFile), servingKey, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, NodeServingCertFile), servingCert, 0o644); err != nil {
		return err
	}
	user := NodeUserPrefix + nodeName
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["peapod"] = &clientcmdapi.Cluster{Server: serverURL, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts["peapod"] = &clientcmdapi.Context{Cluster: "peapod", AuthInfo: user}
	cfg.CurrentContext = "peapod"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encode node kubeconfig: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, NodeKubeconfigFile), data, 0o600)
}
