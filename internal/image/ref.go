package image

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is the name kubelet and containerd use for Docker Hub; ggcr
// calls it index.docker.io internally.
const dockerHub = "docker.io"

// Normalize turns an image reference as written in a Kubernetes image field
// into its fully-qualified form, the way containerd and the kubelet do:
// "busybox" becomes "docker.io/library/busybox:latest", "registry:5000/x/y:tag"
// stays as it is, and "x@sha256:..." becomes "docker.io/library/x@sha256:...".
// A reference that has both a tag and a digest is normalized to the digest,
// which is what gets pulled. It is pure and safe for concurrent use.
func Normalize(ref string) (string, error) {
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	return refString(r), nil
}

// parseRef parses ref with ggcr's defaults (Docker Hub, "latest") and rejects
// what Kubernetes would reject (empty, whitespace, upper case repository).
func parseRef(ref string) (name.Reference, error) {
	if ref == "" || strings.TrimSpace(ref) != ref {
		return nil, fmt.Errorf("invalid image reference %q", ref)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return r, nil
}

// refString renders r in normalized form.
func refString(r name.Reference) string {
	repo := repoString(r.Context())
	if d, ok := r.(name.Digest); ok {
		return repo + "@" + d.DigestStr()
	}
	return repo + ":" + r.Identifier()
}

// repoString renders a repository as "registry/path", with Docker Hub
// spelled "docker.io".
func repoString(repo name.Repository) string {
	return registryString(repo.Registry) + "/" + repo.RepositoryStr()
}

// registryString is the registry host as users write it ("docker.io").
func registryString(reg name.Registry) string {
	if reg.RegistryStr() == name.DefaultRegistry {
		return dockerHub
	}
	return reg.RegistryStr()
}

// repoDigest returns "registry/repo@digest" for the repository of ref.
func repoDigest(ref name.Reference, digest string) string {
	return repoString(ref.Context()) + "@" + digest
}

// withRegistry returns ref rebased onto another registry host (a mirror),
// keeping repository path and tag or digest.
func withRegistry(ref name.Reference, host string, insecure bool) (name.Reference, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	s := host + "/" + ref.Context().RepositoryStr()
	if d, ok := ref.(name.Digest); ok {
		s += "@" + d.DigestStr()
	} else {
		s += ":" + ref.Identifier()
	}
	r, err := name.ParseReference(s, opts...)
	if err != nil {
		return nil, fmt.Errorf("rebase %q onto %s: %w", ref.String(), host, err)
	}
	return r, nil
}
