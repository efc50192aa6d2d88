package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/testutil"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testRegistry serves an in-process registry on loopback, its handler
// wrapped by wrap if not nil, and returns its host:port.
func testRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// push writes img to ref (a loopback registry, so plain http).
func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func twoLayers(t *testing.T) v1.Image {
	return imageOf(t,
		layerTar(t, tarEntry{name: "bin/tool", data: "tool", mode: 0o755}),
		layerTar(t, tarEntry{name: "etc/conf", data: "conf"}))
}

func TestPullDockerHubThroughMirror(t *testing.T) {
	testutil.RequiresRoot(t)
	mirror := testRegistry(t, nil)
	bb := busybox(t)
	push(t, mirror+"/library/busybox:latest", bb)
	arm := imageOf(t, layerTar(t, tarEntry{name: "arm", data: "arm"}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: twoLayers(t), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	idxRef, _ := name.ParseReference(mirror+"/team/multi:v1", name.Insecure)
	if err := remote.WriteIndex(idxRef, idx); err != nil {
		t.Fatal(err)
	}

	s := newStore(t, Options{Mirrors: map[string][]string{"docker.io": {"http://" + mirror}}})
	var mu sync.Mutex
	var events []Progress
	img, err := s.Pull(t.Context(), "busybox", func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := bb.Digest()
	id, _ := bb.ConfigName()
	if img.ID != id.String() || fmt.Sprint(img.Names) != "[docker.io/library/busybox:latest]" ||
		fmt.Sprint(img.RepoDigests) != "[docker.io/library/busybox@"+digest.String()+"]" {
		t.Fatalf("pulled %+v", img)
	}
	if _, err := os.Stat(img.Layers[0] + "/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	diffIDs, _ := bb.ConfigFile()
	var done bool
	for _, e := range events {
		if e.Done && e.Layer == diffIDs.RootFS.DiffIDs[0].String() && e.Complete == e.Total && e.Total > 0 && e.Ref == "docker.io/library/busybox:latest" {
			done = true
		}
	}
	if !done {
		t.Fatalf("no Done progress for the layer: %+v", events)
	}

	// A multi-arch index resolves to linux/amd64; the repo digest is the index's.
	multi, err := s.Pull(t.Context(), "team/multi:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	if len(multi.Layers) != 2 || multi.RepoDigests[0] != "docker.io/team/multi@"+idxDigest.String() {
		t.Fatalf("multi-arch pull: %+v", multi)
	}
	if _, err := s.Get("docker.io/team/multi@" + idxDigest.String()); err != nil {
		t.Fatal(err)
	}
}

func TestPullMirrorFallsBackToOrigin(t *testing.T) {
	testutil.RequiresRoot(t)
	emptyMirror := testRegistry(t, nil)
	origin := testRegistry(t, nil)
	push(t, origin+"/team/app:v1", twoLayers(t))
	s := newStore(t, Options{
		Mirrors:  map[string][]string{origin: {"http://" + emptyMirror}},
		Insecure: []string{origin},
	})
	img, err := s.Pull(t.Context(), origin+"/team/app:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Names[0] != origin+"/team/app:v1" {
		t.Fatalf("names %v", img.Names)
	}
}

func TestPullPlainHTTPOnlyForInsecure(t *testing.T) {
	testutil.RequiresRoot(t)
	origin := testRegistry(t, nil)
	push(t, origin+"/team/app:v1", twoLayers(t))
	s := newStore(t, Options{})
	_, err := s.Pull(t.Context(), origin+"/team/app:v1", nil)
	if err == nil || !strings.Contains(err.Error(), "plain http to "+origin+" refused") {
		t.Fatalf("pull over http from a registry not listed insecure: %v", err)
	}
}

func TestPullTokenAuth(t *testing.T) {
	testutil.RequiresRoot(t)
	const token = "s3cret"
	var host string
	var tokens, denied atomic.Int32
	host = testRegistry(t, func(reg http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				tokens.Add(1)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"token":%q,"access_token":%q,"expires_in":300}`, token, token)
				return
			}
			if r.Header.Get("Authorization") != "Bearer "+token {
				denied.Add(1)
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test"`, host))
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			reg.ServeHTTP(w, r)
		})
	})
	push(t, host+"/private/app:v1", twoLayers(t))
	tokens.Store(0)
	denied.Store(0)
	s := newStore(t, Options{Insecure: []string{host}})
	img, err := s.Pull(t.Context(), host+"/private/app:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tokens.Load() == 0 || denied.Load() == 0 || len(img.Layers) != 2 {
		t.Fatalf("tokens %d, denied %d, image %+v", tokens.Load(), denied.Load(), img)
	}
}

func TestPullCorruptBlobFails(t *testing.T) {
	testutil.RequiresRoot(t)
	img := twoLayers(t)
	layers, _ := img.Layers()
	bad, _ := layers[1].Digest()
	host := testRegistry(t, func(reg http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+bad.String()) {
				reg.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			body[len(body)/2] ^= 0xff
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			io.Copy(w, bytes.NewReader(body))
		})
	})
	push(t, host+"/team/app:v1", img)
	s := newStore(t, Options{Insecure: []string{host}})
	_, err := s.Pull(t.Context(), host+"/team/app:v1", nil)
	if err == nil || !strings.Contains(err.Error(), "digest mismatch") || !strings.Contains(err.Error(), bad.String()) {
		t.Fatalf("pull of a corrupted blob: %v", err)
	}
	if _, err := s.Get(host + "/team/app:v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("corrupt image recorded: %v", err)
	}
	cf, _ := img.ConfigFile()
	if _, err := os.Stat(s.layerDir(cf.RootFS.DiffIDs[1].String())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("corrupt layer left in the store: %v", err)
	}
	tmp, _ := os.ReadDir(s.tmp)
	if len(tmp) != 0 {
		t.Fatalf("scratch left behind: %v", tmp)
	}
}

func TestConcurrentPullsUnpackOnce(t *testing.T) {
	testutil.RequiresRoot(t)
	host := testRegistry(t, func(reg http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
				time.Sleep(100 * time.Millisecond) // make the pulls overlap
			}
			reg.ServeHTTP(w, r)
		})
	})
	push(t, host+"/team/app:v1", twoLayers(t))
	s := newStore(t, Options{Insecure: []string{host}})
	var wg sync.WaitGroup
	ids := make([]string, 4)
	errs := make([]error, 4)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := s.Pull(t.Context(), host+"/team/app:v1", nil)
			errs[i] = err
			if err == nil {
				ids[i] = img.ID
			}
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("pull %d: %s, %v", i, ids[i], errs[i])
		}
	}
	if n := s.unpacks.Load(); n != 2 {
		t.Fatalf("unpacked %d layers for a 2-layer image", n)
	}
	if list, _ := s.List(); len(list) != 1 {
		t.Fatalf("list %+v", list)
	}
}
