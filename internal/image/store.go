package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

var (
	// ErrNotFound is returned (wrapped) when no image matches a reference.
	ErrNotFound = errors.New("image not found")
	// ErrInUse is returned (wrapped) when an image is used by a prepared rootfs.
	ErrInUse = errors.New("image in use")
)

// Options configures a Store.
type Options struct {
	// Root is the store directory, <data-dir>/image-store.
	Root string
	// Mirrors maps a registry host ("docker.io", "registry:5000") to mirror
	// endpoints tried in order before the registry itself, e.g.
	// "http://127.0.0.1:5000". An endpoint with the http scheme is allowed
	// plain http; one without a scheme is https.
	Mirrors map[string][]string
	// Insecure lists registry hosts (host:port) that may be reached over plain
	// http. Every other host is https only.
	Insecure []string
	// Logger receives the store's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Image is an image in the store.
type Image struct {
	ID          string    // config digest "sha256:..."
	Names       []string  // normalized tagged refs, "docker.io/library/busybox:latest"
	RepoDigests []string  // "docker.io/library/busybox@sha256:..."
	Config      v1.Config // entrypoint, cmd, env, working dir, user, ...
	Layers      []string  // unpacked layer directories, bottom first
	Size        int64     // bytes of the image's blobs (compressed layers + config)
	// Pinned images came from files (air-gap tarballs, `peapod image
	// import`): no registry is needed for them, so imagePullPolicy Always
	// does not send the node to one (k3s pins air-gapped images alike).
	Pinned bool
}

// Progress reports a pull's progress on one layer. Complete and Total are
// compressed bytes; Done is set once the layer is unpacked (or was present).
type Progress struct {
	Ref      string
	Layer    string
	Complete int64
	Total    int64
	Done     bool
}

// Store is a content-addressed image store on disk:
//
//	<root>/index.json            refs, images, rootfs uses, imported files
//	<root>/blobs/sha256/<hex>    manifests and configs
//	<root>/layers/<hex>          unpacked layers, keyed by diffID
//	<root>/tmp/                  unpack and import scratch space
//
// All methods are safe for concurrent use.
type Store struct {
	root     string
	mirrors  map[string][]string
	insecure map[string]bool
	log      *slog.Logger

	// tmp is this process's scratch dir: other processes (`peapod image`
	// beside a running server) have their own.
	tmp string

	// mu serializes this process; lockFile (flock) serializes processes
	// sharing the store. Both are taken by lockIndex.
	mu       sync.Mutex
	lockFile *os.File
	// idxStamp is index.json's size and mtime when idx was read or
	// written: another process changed it when they differ.
	idxStamp fileStamp
	idx      *index
	inflight map[string]*flight // diffID -> unpack in progress
	pins     map[string]int     // diffIDs and blob digests a running pull/import needs

	unpacks atomic.Int64 // layers unpacked, for tests
}

// index is the persistent state, index.json.
type index struct {
	Images   map[string]*record      `json:"images"`   // by ID
	Rootfs   map[string]string       `json:"rootfs"`   // prepared rootfs dir -> image ID
	Imported map[string]importedFile `json:"imported"` // ImportDir file path -> stat
	// LayerSizes is the size of each unpacked layer's stream as read
	// (compressed for pulls, uncompressed tar for imports), by diffID.
	LayerSizes map[string]int64 `json:"layerSizes"`
}

// record is one image in index.json.
type record struct {
	ID          string    `json:"id"`
	Names       []string  `json:"names,omitempty"`
	RepoDigests []string  `json:"repoDigests,omitempty"`
	Manifest    string    `json:"manifest"`
	Config      v1.Config `json:"config"`
	DiffIDs     []string  `json:"diffIDs"`
	Size        int64     `json:"size"`
	Pinned      bool      `json:"pinned,omitempty"`
}

type importedFile struct {
	Size    int64 `json:"size"`
	ModTime int64 `json:"mtime"` // unix nanoseconds
}

// NewStore opens (creating if needed) the store at opts.Root. Leftover
// scratch space from a crash is removed.
func NewStore(opts Options) (*Store, error) {
	if opts.Root == "" {
		return nil, errors.New("new image store: empty root")
	}
	s := &Store{
		root:     opts.Root,
		mirrors:  opts.Mirrors,
		insecure: map[string]bool{},
		log:      opts.Logger,
		inflight: map[string]*flight{},
		pins:     map[string]int{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	for _, h := range opts.Insecure {
		s.insecure[h] = true
	}
	for _, d := range []string{"blobs/sha256", "layers", "tmp"} {
		if err := os.MkdirAll(s.path(d), 0o700); err != nil {
			return nil, fmt.Errorf("new image store %s: %w", s.root, err)
		}
	}
	lock, err := os.OpenFile(s.path("lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("new image store %s: %w", s.root, err)
	}
	s.lockFile = lock
	cleanStaleTmp(s.path("tmp"))
	if s.tmp, err = os.MkdirTemp(s.path("tmp"), strconv.Itoa(os.Getpid())+"-"); err != nil {
		return nil, fmt.Errorf("new image store %s: %w", s.root, err)
	}
	s.lockIndex()
	defer s.unlockIndex()
	if s.idx == nil {
		return nil, fmt.Errorf("new image store %s: index unreadable", s.root)
	}
	return s, nil
}

type fileStamp struct {
	size  int64
	mtime time.Time
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), mtime: fi.ModTime()}
}

// lockIndex takes the store for this process and the others sharing it,
// and rereads index.json if another process changed it. Every access to
// s.idx happens between lockIndex and unlockIndex.
func (s *Store) lockIndex() {
	s.mu.Lock()
	_ = unix.Flock(int(s.lockFile.Fd()), unix.LOCK_EX)
	path := s.path("index.json")
	if st := stampOf(path); s.idx == nil || st != s.idxStamp {
		idx, err := loadIndex(path)
		if err != nil {
			s.log.Error("image index unreadable; keeping the copy in memory", "err", err)
			if s.idx == nil {
				s.idx, _ = loadIndex("")
			}
		} else {
			s.idx = idx
		}
		s.idxStamp = st
	}
}

func (s *Store) unlockIndex() {
	_ = unix.Flock(int(s.lockFile.Fd()), unix.LOCK_UN)
	s.mu.Unlock()
}

// cleanStaleTmp removes scratch dirs of processes that are gone.
func cleanStaleTmp(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		owner, _, _ := strings.Cut(e.Name(), "-")
		pid, err := strconv.Atoi(owner)
		if err == nil && unix.Kill(pid, 0) == nil {
			continue // a live process's
		}
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// layerDir is where the layer with diffID is unpacked.
func (s *Store) layerDir(diffID string) string {
	return s.path("layers", strings.TrimPrefix(diffID, "sha256:"))
}

func (s *Store) blobPath(digest string) string {
	return s.path("blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

func loadIndex(path string) (*index, error) {
	idx := &index{}
	if path == "" {
		path = os.DevNull
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read index: %w", err)
	case len(b) == 0:
	default:
		if err := json.Unmarshal(b, idx); err != nil {
			return nil, fmt.Errorf("parse index %s: %w", path, err)
		}
	}
	if idx.Images == nil {
		idx.Images = map[string]*record{}
	}
	if idx.Rootfs == nil {
		idx.Rootfs = map[string]string{}
	}
	if idx.Imported == nil {
		idx.Imported = map[string]importedFile{}
	}
	if idx.LayerSizes == nil {
		idx.LayerSizes = map[string]int64{}
	}
	return idx, nil
}

// saveLocked writes index.json atomically. Callers hold lockIndex.
func (s *Store) saveLocked() error {
	b, err := json.MarshalIndent(s.idx, "", "  ")
	if err != nil {
		return fmt.Errorf("encode index: %w", err)
	}
	if err := writeFileAtomic(s.path("index.json"), b); err != nil {
		return fmt.Errorf("save index: %w", err)
	}
	s.idxStamp = stampOf(s.path("index.json"))
	return nil
}

// writeFileAtomic writes b to path via a synced temp file and rename.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// image converts a record to the exported form. Callers hold lockIndex.
func (s *Store) image(r *record) *Image {
	img := &Image{
		ID:          r.ID,
		Names:       append([]string(nil), r.Names...),
		RepoDigests: append([]string(nil), r.RepoDigests...),
		Config:      *r.Config.DeepCopy(),
		Size:        r.Size,
		Pinned:      r.Pinned,
	}
	for _, d := range r.DiffIDs {
		img.Layers = append(img.Layers, s.layerDir(d))
	}
	return img
}

// Get returns the image named by ref: a name ("busybox", normalized), an ID
// ("sha256:<hex>" or the bare hex) or a digest reference ("busybox@sha256:...",
// matched against RepoDigests). It returns an error wrapping ErrNotFound when
// nothing matches.
func (s *Store) Get(ref string) (*Image, error) {
	s.lockIndex()
	defer s.unlockIndex()
	r, _, err := s.findLocked(ref)
	if err != nil {
		return nil, err
	}
	return s.image(r), nil
}

// findLocked resolves ref to a record; byName reports whether it matched one
// of the record's names (so Remove can untag just that name).
func (s *Store) findLocked(ref string) (r *record, byName string, err error) {
	id := ref
	if !strings.HasPrefix(id, "sha256:") && len(id) == 64 && isHex(id) {
		id = "sha256:" + id
	}
	if r, ok := s.idx.Images[id]; ok {
		return r, "", nil
	}
	norm, err := Normalize(ref)
	if err != nil {
		return nil, "", fmt.Errorf("get image %q: %w", ref, err)
	}
	for _, r := range s.idx.Images {
		for _, n := range r.Names {
			if n == norm {
				return r, n, nil
			}
		}
		for _, d := range r.RepoDigests {
			if d == norm {
				return r, "", nil
			}
		}
	}
	return nil, "", fmt.Errorf("get image %q: %w", ref, ErrNotFound)
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// List returns every image in the store, sorted by ID.
func (s *Store) List() ([]*Image, error) {
	s.lockIndex()
	defer s.unlockIndex()
	out := make([]*Image, 0, len(s.idx.Images))
	for _, r := range s.idx.Images {
		out = append(out, s.image(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// addLocked records an image, merging names and repo digests into an
// existing record with the same ID, and moving each name off any other image
// (a tag names one image). Callers hold lockIndex and save afterwards.
func (s *Store) addLocked(r *record) {
	for _, other := range s.idx.Images {
		if other.ID != r.ID {
			other.Names = without(other.Names, r.Names...)
		}
	}
	if old, ok := s.idx.Images[r.ID]; ok {
		old.Names = union(old.Names, r.Names)
		old.RepoDigests = union(old.RepoDigests, r.RepoDigests)
		old.Pinned = old.Pinned || r.Pinned
		return
	}
	r.Names = union(nil, r.Names)
	r.RepoDigests = union(nil, r.RepoDigests)
	s.idx.Images[r.ID] = r
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func without(list []string, drop ...string) []string {
	var out []string
	for _, s := range list {
		keep := true
		for _, d := range drop {
			if s == d {
				keep = false
			}
		}
		if keep {
			out = append(out, s)
		}
	}
	return out
}
