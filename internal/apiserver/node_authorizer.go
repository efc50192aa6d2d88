package apiserver

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/peapod/peapod/internal/clusternetwork"
)

// Node identities, as Kubernetes names them.
const (
	NodeUserPrefix = "system:node:"
	NodesGroup     = "system:nodes"
	// NodeLeaseNamespace holds one Lease per node.
	NodeLeaseNamespace = "kube-node-lease"
)

// NodeGraph answers the questions the node authorizer asks about stored
// objects. Implementations must be safe for concurrent use.
type NodeGraph interface {
	// PodNodeName returns spec.nodeName of pod namespace/name; found is
	// false when the pod does not exist.
	PodNodeName(ctx context.Context, namespace, name string) (nodeName string, found bool, err error)
	// NodeReferences reports whether a pod bound to node references the
	// object resource ("configmaps" or "secrets") namespace/name through
	// a volume, env, envFrom or imagePullSecrets.
	NodeReferences(ctx context.Context, node, resource, namespace, name string) (bool, error)
	// VolumeOnNode reports whether PersistentVolume name is pinned to node
	// by its required node affinity (kubernetes.io/hostname In [node]).
	VolumeOnNode(ctx context.Context, node, name string) (bool, error)
}

// NodeAuthorizer is Kubernetes' Node authorizer and NodeRestriction
// admission in one: it decides requests of users named system:node:<name>
// in group system:nodes and denies (without reason) everyone else, so
// compose it with Union. A node may:
//   - get/list/watch nodes, pods, services, endpoints, endpointslices,
//     runtimeclasses and namespaces;
//   - get (or list/watch with a metadata.name field selector) the
//     configmaps and secrets its pods reference, and the cluster's network
//     settings, ConfigMap kube-system/peapod-network;
//   - get the persistentvolumeclaims its pods reference; get, list and
//     watch persistentvolumes, and delete those pinned to it by node
//     affinity (the local-path provisioner's node side removes released
//     volumes' directories; Kubernetes' node authorizer, with no such
//     job for nodes, lets them get only their pods' volumes);
//   - create, get, update and patch its own Node (and node status), and
//     delete it;
//   - get, create, update, patch and delete its own Lease in kube-node-lease;
//   - update and patch the status of, and delete, pods bound to it;
//   - create, update and patch events;
//   - read discovery and health endpoints.
//
// Creates are decided on the object's name, which the front handler puts
// in the request context (see withNodeRequest); without it they are
// denied. Safe for concurrent use.
type NodeAuthorizer struct{ Graph NodeGraph }

var _ Authorizer = NodeAuthorizer{}

// NodeName returns the node a user speaks for, or ok=false when u is not
// a node identity.
func NodeName(u User) (string, bool) {
	name, found := strings.CutPrefix(u.Name, NodeUserPrefix)
	if !found || name == "" || !slices.Contains(u.Groups, NodesGroup) {
		return "", false
	}
	return name, true
}

// nodeRequest carries what the authorizer needs beyond Attributes: the
// name inside a create's body and the metadata.name of a list or watch's
// field selector.
type nodeRequest struct {
	objectName    string
	fieldSelected string
}

type nodeRequestKey struct{}

func withNodeRequest(ctx context.Context, nr nodeRequest) context.Context {
	return context.WithValue(ctx, nodeRequestKey{}, nr)
}

func nodeRequestFrom(ctx context.Context) nodeRequest {
	nr, _ := ctx.Value(nodeRequestKey{}).(nodeRequest)
	return nr
}

// nodeDecision is the outcome of the pure rule table.
type nodeDecision int

const (
	nodeDeny nodeDecision = iota
	nodeAllow
	// nodeIfPodBound allows when the named pod is bound to the node.
	nodeIfPodBound
	// nodeIfReferenced allows when a pod of the node references the object.
	nodeIfReferenced
	// nodeIfVolumeOnNode allows when the named PersistentVolume's required
	// node affinity is this node's hostname alone.
	nodeIfVolumeOnNode
)

var nodeReadable = map[string]bool{
	"/nodes": true, "/pods": true, "/services": true, "/endpoints": true, "/namespaces": true,
	"discovery.k8s.io/endpointslices": true, "node.k8s.io/runtimeclasses": true,
}

func isRead(verb string) bool { return verb == "get" || verb == "list" || verb == "watch" }

// nodeRule decides a node's request from its attributes alone, or says
// which stored fact decides it; it also returns the reason for a denial.
// name is the object's name (from the path, the create body or the field
// selector).
func nodeRule(node string, a Attributes, nr nodeRequest) (nodeDecision, string) {
	if a.Resource == "" {
		if a.Verb == "get" && isNodeReadablePath(a.Path) {
			return nodeAllow, ""
		}
		return nodeDeny, fmt.Sprintf("node %q may not access path %q", node, a.Path)
	}
	gr := a.Group + "/" + a.Resource
	name := a.Name
	switch {
	case a.Verb == "create":
		name = nr.objectName
	case a.Verb == "list" || a.Verb == "watch":
		name = nr.fieldSelected
	}
	switch {
	case gr == "/nodes":
		if a.Subresource != "" && a.Subresource != "status" {
			break
		}
		if isRead(a.Verb) {
			return nodeAllow, ""
		}
		switch a.Verb {
		case "create", "update", "patch", "delete":
			if name == node && (a.Verb != "create" || a.Subresource == "") {
				return nodeAllow, ""
			}
			return nodeDeny, fmt.Sprintf("node %q is not allowed to modify node %q", node, name)
		}
	case gr == "/pods":
		switch {
		case a.Subresource == "" && isRead(a.Verb):
			return nodeAllow, ""
		case a.Subresource == "status" && (a.Verb == "update" || a.Verb == "patch"),
			a.Subresource == "" && a.Verb == "delete":
			return nodeIfPodBound, ""
		}
		return nodeDeny, fmt.Sprintf("node %q can only read pods and update the status of or delete pods bound to it", node)
	case gr == "/configmaps" || gr == "/secrets":
		if !isRead(a.Verb) || a.Subresource != "" {
			break
		}
		if gr == "/configmaps" && a.Namespace == clusternetwork.ConfigMapNamespace && name == clusternetwork.ConfigMapName {
			return nodeAllow, "" // the cluster's network settings, which every node reads
		}
		if name == "" || a.Namespace == "" {
			return nodeDeny, fmt.Sprintf("node %q can only read individual %s referenced by its pods", node, a.Resource)
		}
		return nodeIfReferenced, ""
	case gr == "/persistentvolumeclaims":
		if a.Verb == "get" && a.Subresource == "" && a.Namespace != "" && name != "" {
			return nodeIfReferenced, ""
		}
		return nodeDeny, fmt.Sprintf("node %q can only get individual persistentvolumeclaims referenced by its pods", node)
	case gr == "/persistentvolumes":
		// The node's side of the local-path provisioner watches the
		// volumes to remove the directories of released ones; it may
		// delete only volumes pinned to it (see NodeGraph.VolumeOnNode).
		switch {
		case isRead(a.Verb) && a.Subresource == "":
			return nodeAllow, ""
		case a.Verb == "delete" && a.Subresource == "" && name != "":
			return nodeIfVolumeOnNode, ""
		}
		return nodeDeny, fmt.Sprintf("node %q can only read persistentvolumes and delete those on it", node)
	case gr == "coordination.k8s.io/leases":
		if a.Namespace != NodeLeaseNamespace || a.Subresource != "" {
			break
		}
		switch a.Verb {
		case "get", "list", "watch", "create", "update", "patch", "delete":
			if name == node {
				return nodeAllow, ""
			}
		}
		return nodeDeny, fmt.Sprintf("node %q can only access its own lease %s/%s", node, NodeLeaseNamespace, node)
	case gr == "/events" || gr == "events.k8s.io/events":
		if a.Verb == "create" || a.Verb == "update" || a.Verb == "patch" {
			return nodeAllow, ""
		}
	default:
		if nodeReadable[gr] && isRead(a.Verb) && a.Subresource == "" {
			return nodeAllow, ""
		}
	}
	return nodeDeny, fmt.Sprintf("node %q is not allowed to %s %s", node, a.Verb, subresourceName(a))
}

func subresourceName(a Attributes) string {
	if a.Subresource != "" {
		return a.Resource + "/" + a.Subresource
	}
	return a.Resource
}

func isNodeReadablePath(p string) bool {
	switch {
	case p == "/api" || p == "/apis" || p == "/version" || p == "/healthz" || p == "/livez" || p == "/readyz":
		return true
	case strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/apis/") || strings.HasPrefix(p, "/openapi/"):
		return true
	}
	return false
}

// Authorize implements Authorizer.
func (n NodeAuthorizer) Authorize(ctx context.Context, a Attributes) (bool, string, error) {
	node, ok := NodeName(a.User)
	if !ok {
		return false, "", nil
	}
	nr := nodeRequestFrom(ctx)
	decision, reason := nodeRule(node, a, nr)
	switch decision {
	case nodeAllow:
		return true, "", nil
	case nodeIfPodBound:
		bound, found, err := n.Graph.PodNodeName(ctx, a.Namespace, a.Name)
		if err != nil {
			return false, "", fmt.Errorf("look up pod %s/%s: %w", a.Namespace, a.Name, err)
		}
		if !found {
			// Let the handler answer 404, as for any missing object.
			return true, "", nil
		}
		if bound == node {
			return true, "", nil
		}
		return false, fmt.Sprintf("node %q can only %s pods with spec.nodeName set to itself", node, verbPhrase(a)), nil
	case nodeIfReferenced:
		name := a.Name
		if name == "" {
			name = nr.fieldSelected
		}
		ok, err := n.Graph.NodeReferences(ctx, node, a.Resource, a.Namespace, name)
		if err != nil {
			return false, "", fmt.Errorf("look up references to %s %s/%s: %w", a.Resource, a.Namespace, name, err)
		}
		if ok {
			return true, "", nil
		}
		return false, fmt.Sprintf("no relationship found between node %q and this object", node), nil
	case nodeIfVolumeOnNode:
		ok, err := n.Graph.VolumeOnNode(ctx, node, a.Name)
		if err != nil {
			return false, "", fmt.Errorf("look up persistentvolume %s: %w", a.Name, err)
		}
		if ok {
			return true, "", nil
		}
		return false, fmt.Sprintf("node %q can only delete persistentvolumes pinned to it", node), nil
	}
	return false, reason, nil
}

func verbPhrase(a Attributes) string {
	if a.Verb == "delete" {
		return "delete"
	}
	return "update the status of"
}
