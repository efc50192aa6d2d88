package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// endpoint is one place to pull a reference from: a mirror or the origin.
type endpoint struct {
	desc string         // for errors and logs: "mirror http://..." or "origin"
	ref  name.Reference // the reference rebased onto that endpoint
	http bool           // plain http allowed for this endpoint's host
}

// Pull fetches ref (normalized first) from its registry over the registry v2
// API and stores it, returning the stored image. Mirrors configured for the
// registry are tried first, in order, then the registry itself; the first
// endpoint that yields the whole image wins. Plain http is used only for
// hosts listed in Options.Insecure and mirrors configured with http://.
// Every blob is verified against its digest and every layer against its
// diffID. progress, if not nil, is called as layer bytes arrive and once per
// layer with Done set. Concurrent pulls sharing layers unpack each once.
// Cancelling ctx aborts the pull; nothing half-written stays in the store.
func (s *Store) Pull(ctx context.Context, ref string, progress func(Progress)) (*Image, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	norm := refString(r)
	eps, err := s.endpoints(r)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", norm, err)
	}
	var errs []error
	for _, ep := range eps {
		img, err := s.pullFrom(ctx, r, ep, progress)
		if err == nil {
			s.log.InfoContext(ctx, "pulled image", "ref", norm, "id", img.ID, "from", ep.desc)
			return img, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pull %s: %w", norm, ctx.Err())
		}
		s.log.WarnContext(ctx, "pull attempt failed", "ref", norm, "from", ep.desc, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", ep.desc, err))
	}
	return nil, fmt.Errorf("pull %s: %w", norm, errors.Join(errs...))
}

// endpoints lists the mirrors of r's registry, then the registry itself.
func (s *Store) endpoints(r name.Reference) ([]endpoint, error) {
	host := registryString(r.Context().Registry)
	var eps []endpoint
	for _, m := range s.mirrors[host] {
		mhost, plain, err := parseMirror(m)
		if err != nil {
			return nil, err
		}
		mref, err := withRegistry(r, mhost, plain)
		if err != nil {
			return nil, err
		}
		eps = append(eps, endpoint{desc: "mirror " + m, ref: mref, http: plain})
	}
	insecure := s.insecure[host]
	oref, err := withRegistry(r, host, insecure)
	if err != nil {
		return nil, err
	}
	return append(eps, endpoint{desc: "origin " + host, ref: oref, http: insecure}), nil
}

// parseMirror splits a mirror endpoint ("http://h:p", "https://h", "h:p")
// into its host and whether it is plain http.
func parseMirror(m string) (host string, plain bool, err error) {
	if !strings.Contains(m, "://") {
		m = "https://" + m
	}
	u, err := url.Parse(m)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", false, fmt.Errorf("invalid mirror endpoint %q", m)
	}
	return u.Host, u.Scheme == "http", nil
}

func (s *Store) pullFrom(ctx context.Context, orig name.Reference, ep endpoint, progress func(Progress)) (*Image, error) {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.NewMultiKeychain(authn.DefaultKeychain)),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
		remote.WithTransport(&httpGuard{host: ep.ref.Context().RegistryStr(), allow: ep.http, insecure: s.insecure, next: remote.DefaultTransport}),
	}
	desc, err := remote.Get(ep.ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("get manifest %s: %w", ep.ref, err)
	}
	img, err := desc.Image() // resolves a manifest list to our platform
	if err != nil {
		return nil, fmt.Errorf("resolve image %s: %w", ep.ref, err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", ep.ref, err)
	}
	src := source{
		compressed: true,
		manifest:   manifest,
		repoDigest: []string{repoDigest(orig, desc.Digest.String())},
		ref:        refString(orig),
		progress:   progress,
	}
	if _, ok := orig.(name.Tag); ok {
		src.names = []string{refString(orig)}
	}
	return s.ingest(ctx, img, src)
}

// httpGuard refuses plain http requests except to the endpoint's own host
// when that is allowed, or to a host listed as insecure (a token realm).
type httpGuard struct {
	host     string
	allow    bool
	insecure map[string]bool
	next     http.RoundTripper
}

func (g *httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !(g.allow && req.URL.Host == g.host) && !g.insecure[req.URL.Host] {
		return nil, fmt.Errorf("plain http to %s refused: not an insecure registry", req.URL.Host)
	}
	return g.next.RoundTrip(req)
}
