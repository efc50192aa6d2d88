package apiserver

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
)

// joinRequest is the body of POST /peapod/v1/join. The node generates its
// keys; only certificate requests travel.
type joinRequest struct {
	NodeName string `json:"nodeName"`
	// ClientCSR (PEM) asks for the node's client certificate
	// CN=system:node:<nodeName>, O=system:nodes.
	ClientCSR string `json:"clientCSR,omitempty"`
	// ServingCSR (PEM) asks for the node agent's serving certificate for
	// ServingIPs and ServingNames (only the node name is allowed as DNS
	// name).
	ServingCSR   string   `json:"servingCSR,omitempty"`
	ServingIPs   []string `json:"servingIPs,omitempty"`
	ServingNames []string `json:"servingNames,omitempty"`
}

// joinResponse answers a join with PEM certificates.
type joinResponse struct {
	CA          string `json:"ca"`
	ClientCert  string `json:"clientCert,omitempty"`
	ServingCert string `json:"servingCert,omitempty"`
}

// serveJoin signs a node's certificates. A bootstrap token
// (system:bootstrappers) may join under any valid node name; a node
// (system:node:<name>) may renew its own certificates only.
func (f *front) serveJoin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		f.api.writeError(w, r, apierrors.NewMethodNotSupported(nodesGR, r.Method))
		return
	}
	user, ok, err := f.api.authn.Authenticate(r)
	if err != nil || !ok {
		f.api.writeError(w, r, apierrors.NewUnauthorized("Unauthorized"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		f.api.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("read body: %v", err)))
		return
	}
	var req joinRequest
	if err := json.Unmarshal(body, &req); err != nil {
		f.api.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("decode join request: %v", err)))
		return
	}
	if msgs := validation.IsDNS1123Subdomain(req.NodeName); len(msgs) > 0 {
		f.api.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("invalid node name %q: %v", req.NodeName, msgs)))
		return
	}
	node, isNode := NodeName(user)
	switch {
	case slices.Contains(user.Groups, BootstrappersGroup):
	case isNode && node == req.NodeName:
	default:
		f.api.writeError(w, r, apierrors.NewForbidden(nodesGR, req.NodeName,
			fmt.Errorf("user %q may not obtain credentials for node %q", user.Name, req.NodeName)))
		return
	}
	resp, err := f.pki.signJoin(req)
	if err != nil {
		f.api.writeError(w, r, apierrors.NewBadRequest(err.Error()))
		return
	}
	f.api.log.Info("issued node credentials", "node", req.NodeName, "by", user.Name,
		"client", resp.ClientCert != "", "serving", resp.ServingCert != "")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

var nodesGR = core("nodes").GroupResource()

// signJoin signs the certificates a join request asks for.
func (p *PKI) signJoin(req joinRequest) (joinResponse, error) {
	resp := joinResponse{CA: string(p.CAPEM)}
	if req.ClientCSR == "" && req.ServingCSR == "" {
		return resp, fmt.Errorf("join request for %s asks for no certificate", req.NodeName)
	}
	if req.ClientCSR != "" {
		csr, err := parseCSR(req.ClientCSR)
		if err != nil {
			return resp, fmt.Errorf("client CSR: %w", err)
		}
		cert, err := p.signCSR(csr, certSpec{cn: NodeUserPrefix + req.NodeName, orgs: []string{NodesGroup}, client: true, years: 1})
		if err != nil {
			return resp, fmt.Errorf("sign client certificate for %s: %w", req.NodeName, err)
		}
		resp.ClientCert = string(cert)
	}
	if req.ServingCSR != "" {
		sans := []string{}
		for _, n := range req.ServingNames {
			if n != req.NodeName {
				return resp, fmt.Errorf("serving certificate may name only the node %q, not %q", req.NodeName, n)
			}
			sans = append(sans, n)
		}
		for _, s := range req.ServingIPs {
			ip := net.ParseIP(s)
			if ip == nil {
				return resp, fmt.Errorf("serving certificate: invalid IP %q", s)
			}
			sans = append(sans, ip.String())
		}
		if len(sans) == 0 {
			return resp, fmt.Errorf("serving certificate for %s names no IP or DNS name", req.NodeName)
		}
		csr, err := parseCSR(req.ServingCSR)
		if err != nil {
			return resp, fmt.Errorf("serving CSR: %w", err)
		}
		cert, err := p.signCSR(csr, certSpec{cn: NodeUserPrefix + req.NodeName, orgs: []string{NodesGroup}, sans: sans, server: true, years: 1})
		if err != nil {
			return resp, fmt.Errorf("sign serving certificate for %s: %w", req.NodeName, err)
		}
		resp.ServingCert = string(cert)
	}
	return resp, nil
}

func parseCSR(pemData string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(pemData))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("no PEM CERTIFICATE REQUEST")
	}
	return x509.ParseCertificateRequest(block.Bytes)
}
