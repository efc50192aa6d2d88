package apiserver

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Compact JWS (RFC 7515) with RS256, the only algorithm service-account
// tokens use here. Pure: no I/O, no clock.

var b64 = base64.RawURLEncoding

// jwtHeader is the protected header of a token.
type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
}

// keyID is the kid Kubernetes puts in service-account tokens: the
// unpadded base64url SHA-256 of the public key's PKIX DER.
func keyID(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return b64.EncodeToString(sum[:]), nil
}

// signJWT serialises claims and signs them with key (RS256) under kid.
func signJWT(key *rsa.PrivateKey, kid string, claims any) (string, error) {
	hdr, err := json.Marshal(jwtHeader{Alg: "RS256", Kid: kid})
	if err != nil {
		return "", fmt.Errorf("encode JWT header: %w", err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode JWT claims: %w", err)
	}
	signing := b64.EncodeToString(hdr) + "." + b64.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	return signing + "." + b64.EncodeToString(sig), nil
}

// looksLikeJWT reports whether tok has the shape of a compact JWS, so
// authenticators can leave other bearer tokens to others.
func looksLikeJWT(tok string) bool {
	return strings.Count(tok, ".") == 2 && strings.HasPrefix(tok, "eyJ")
}

// parseJWTUnverified decodes the header and the claims of tok into claims
// without checking the signature (to find the issuer before verifying).
func parseJWTUnverified(tok string, claims any) (jwtHeader, error) {
	var hdr jwtHeader
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return hdr, errors.New("malformed JWT: want three parts")
	}
	h, err := b64.DecodeString(parts[0])
	if err != nil {
		return hdr, fmt.Errorf("malformed JWT header: %w", err)
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		return hdr, fmt.Errorf("malformed JWT header: %w", err)
	}
	body, err := b64.DecodeString(parts[1])
	if err != nil {
		return hdr, fmt.Errorf("malformed JWT claims: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(claims); err != nil {
		return hdr, fmt.Errorf("malformed JWT claims: %w", err)
	}
	return hdr, nil
}

// verifyJWT checks tok's RS256 signature against pub and decodes its
// claims. Claims (iss, aud, exp) are the caller's to check.
func verifyJWT(tok string, pub *rsa.PublicKey, claims any) error {
	hdr, err := parseJWTUnverified(tok, claims)
	if err != nil {
		return err
	}
	if hdr.Alg != "RS256" {
		return fmt.Errorf("JWT algorithm %q not accepted", hdr.Alg)
	}
	i := strings.LastIndex(tok, ".")
	sig, err := b64.DecodeString(tok[i+1:])
	if err != nil {
		return fmt.Errorf("malformed JWT signature: %w", err)
	}
	sum := sha256.Sum256([]byte(tok[:i]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("invalid JWT signature")
	}
	return nil
}
