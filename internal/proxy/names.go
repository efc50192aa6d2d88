package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
	"strings"
)

// Chain and set name prefixes of per-Service objects. Every per-Service
// name contains a "/", which no fixed object's name does: that is how a
// full sync recognises leftovers.
const (
	prefixService  = "service-"  // a port's endpoints under the Cluster policy
	prefixLocal    = "local-"    // a port's endpoints on this node (Local policy)
	prefixExternal = "external-" // NodePort and external-IP traffic of a port
	prefixEndpoint = "endpoint-" // one endpoint: hairpin masquerade, affinity, DNAT
	prefixAffinity = "affinity-" // the clients pinned to one endpoint
)

// maxNameBase keeps names within nft's limit with room for the prefixes.
const maxNameBase = 256 - 16

// hashedName prefixes name with a hash of itself, so names stay unique
// and tell apart at a glance even when truncated (kube-proxy's scheme):
// "HASH8-namespace/service/proto/port".
func hashedName(name string) string {
	sum := sha256.Sum256([]byte(name))
	out := base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + name
	if len(out) > maxNameBase {
		out = out[:maxNameBase-3] + "..."
	}
	return out
}

// endpointBase names the objects of one endpoint of a port.
func endpointBase(sp *servicePort, e endpoint) string {
	// The part after the hash identifies the port (without its hash) and
	// the endpoint: "namespace/service/proto/port__ip/port".
	rest := sp.chainBase[strings.IndexByte(sp.chainBase, '-')+1:]
	return hashedName(rest + "__" + e.ip + "/" + itoa(e.port))
}

// isServiceObject reports whether a chain or set name is a per-Service
// one (see the prefixes).
func isServiceObject(name string) bool { return strings.Contains(name, "/") }

func itoa[T ~int32 | ~int | ~uint16](n T) string { return strconv.Itoa(int(n)) }
