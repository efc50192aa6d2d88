package apiserver

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Compact JWS (RFC 7515) with ES256 (P-256 keys, what peapod generates) or
// RS256 (RSA keys, which a data dir from before may hold), as Kubernetes
// signs service-account tokens with either. Pure: no I/O, no clock.

var b64 = base64.RawURLEncoding

// jwtHeader is the protected header of a token.
type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
}

// keyID is the kid Kubernetes puts in service-account tokens: the
// unpadded base64url SHA-256 of the public key's PKIX DER.
func keyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return b64.EncodeToString(sum[:]), nil
}

// jwsAlgorithm is the JWS algorithm of a signing key; "" for a key type
// tokens are not signed with.
func jwsAlgorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RS256"
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return "ES256"
		}
	}
	return ""
}

// es256Size is the length of each of r and s in an ES256 signature.
const es256Size = 32

// signJWT serialises claims and signs them with key under kid, with the
// algorithm its type calls for.
func signJWT(key crypto.Signer, kid string, claims any) (string, error) {
	alg := jwsAlgorithm(key.Public())
	if alg == "" {
		return "", fmt.Errorf("sign JWT: unsupported key %T", key)
	}
	hdr, err := json.Marshal(jwtHeader{Alg: alg, Kid: kid})
	if err != nil {
		return "", fmt.Errorf("encode JWT header: %w", err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode JWT claims: %w", err)
	}
	signing := b64.EncodeToString(hdr) + "." + b64.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		// JWS wants r and s as fixed-size big-endian integers, not ASN.1.
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			return "", fmt.Errorf("sign JWT: %w", err)
		}
		sig = make([]byte, 2*es256Size)
		r.FillBytes(sig[:es256Size])
		s.FillBytes(sig[es256Size:])
	default:
		if sig, err = key.Sign(rand.Reader, sum[:], crypto.SHA256); err != nil {
			return "", fmt.Errorf("sign JWT: %w", err)
		}
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

// verifyJWT checks tok's signature against pub, with the one algorithm
// pub's type calls for (a token naming another is refused, so an RSA key
// can never be used as an HMAC secret, say), and decodes its claims.
// Claims (iss, aud, exp) are the caller's to check.
func verifyJWT(tok string, pub crypto.PublicKey, claims any) error {
	hdr, err := parseJWTUnverified(tok, claims)
	if err != nil {
		return err
	}
	alg := jwsAlgorithm(pub)
	if alg == "" || hdr.Alg != alg {
		return fmt.Errorf("JWT algorithm %q not accepted", hdr.Alg)
	}
	i := strings.LastIndex(tok, ".")
	sig, err := b64.DecodeString(tok[i+1:])
	if err != nil {
		return fmt.Errorf("malformed JWT signature: %w", err)
	}
	sum := sha256.Sum256([]byte(tok[:i]))
	var ok bool
	switch k := pub.(type) {
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil
	case *ecdsa.PublicKey:
		ok = len(sig) == 2*es256Size &&
			ecdsa.Verify(k, sum[:], new(big.Int).SetBytes(sig[:es256Size]), new(big.Int).SetBytes(sig[es256Size:]))
	}
	if !ok {
		return errors.New("invalid JWT signature")
	}
	return nil
}
