package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// source says how ingest reads an image's layers.
type source struct {
	// compressed reads layers with Compressed() and verifies their digest
	// (registries); otherwise Uncompressed() (local archives, where the
	// compressed form may not exist and would be computed).
	compressed bool
	manifest   []byte // raw manifest to keep as a blob, if any
	names      []string
	repoDigest []string
	// pinned marks images imported from files (air-gap tarballs).
	pinned   bool
	ref      string // for progress
	progress func(Progress)
}

// ingest stores img: config and manifest blobs, every layer unpacked, and a
// record in the index merged with any existing one. Layers and blobs it needs
// are pinned so a concurrent Remove or Prune cannot collect them before the
// record exists.
func (s *Store) ingest(ctx context.Context, img v1.Image, src source) (*Image, error) {
	cfgRaw, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	want, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("config digest: %w", err)
	}
	sum := sha256.Sum256(cfgRaw)
	id := "sha256:" + hex.EncodeToString(sum[:])
	if id != want.String() {
		return nil, fmt.Errorf("config digest mismatch: got %s, want %s", id, want)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, fmt.Errorf("parse config %s: %w", id, err)
	}
	rec := &record{ID: id, Names: src.names, RepoDigests: src.repoDigest, Config: cf.Config, Pinned: src.pinned}
	var manifestDigest string
	if src.manifest != nil {
		ms := sha256.Sum256(src.manifest)
		manifestDigest = "sha256:" + hex.EncodeToString(ms[:])
		rec.Manifest = manifestDigest
	}
	for _, d := range cf.RootFS.DiffIDs {
		rec.DiffIDs = append(rec.DiffIDs, d.String())
	}
	pinned := append([]string{id, manifestDigest}, rec.DiffIDs...)
	s.pin(pinned, 1)
	defer s.pin(pinned, -1)

	if err := s.writeBlob(id, cfgRaw); err != nil {
		return nil, err
	}
	if src.manifest != nil {
		if err := s.writeBlob(manifestDigest, src.manifest); err != nil {
			return nil, err
		}
	}
	sizes := map[string]int64{}
	for _, diffID := range cf.RootFS.DiffIDs {
		layer, err := img.LayerByDiffID(diffID)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", diffID, err)
		}
		n, err := s.fetchLayer(ctx, layer, diffID.String(), src)
		if err != nil {
			return nil, err
		}
		sizes[diffID.String()] = n
	}
	s.lockIndex()
	defer s.unlockIndex()
	if s.idx.LayerSizes == nil {
		s.idx.LayerSizes = map[string]int64{}
	}
	rec.Size = int64(len(cfgRaw))
	for d, n := range sizes {
		if n >= 0 {
			s.idx.LayerSizes[d] = n
		}
		rec.Size += s.idx.LayerSizes[d]
	}
	s.addLocked(rec)
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return s.image(s.idx.Images[id]), nil
}

// fetchLayer ensures one layer is unpacked, reporting progress. It returns
// the bytes read, or -1 if the layer was already there.
func (s *Store) fetchLayer(ctx context.Context, layer v1.Layer, diffID string, src source) (int64, error) {
	var digest string
	var total int64
	if src.compressed {
		d, err := layer.Digest()
		if err != nil {
			return 0, fmt.Errorf("layer %s: digest: %w", diffID, err)
		}
		digest = d.String()
		if total, err = layer.Size(); err != nil {
			return 0, fmt.Errorf("layer %s: size: %w", diffID, err)
		}
	}
	report := func(p Progress) {
		if src.progress != nil {
			p.Ref, p.Layer, p.Total = src.ref, diffID, total
			src.progress(p)
		}
	}
	var read atomic.Int64
	unpacked, err := s.ensureLayer(ctx, diffID, digest, func() (io.ReadCloser, error) {
		var rc io.ReadCloser
		var err error
		if src.compressed {
			rc, err = layer.Compressed()
		} else {
			rc, err = layer.Uncompressed()
		}
		if err != nil {
			return nil, err
		}
		return &countingReader{rc: rc, n: &read, report: report}, nil
	})
	if err != nil {
		return 0, err
	}
	report(Progress{Complete: max(read.Load(), total), Done: true})
	if !unpacked {
		return -1, nil
	}
	return read.Load(), nil
}

// countingReader counts bytes read and reports progress at most every 100ms.
type countingReader struct {
	rc     io.ReadCloser
	n      *atomic.Int64
	report func(Progress)
	last   time.Time
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	total := c.n.Add(int64(n))
	if now := time.Now(); now.Sub(c.last) > 100*time.Millisecond {
		c.last = now
		c.report(Progress{Complete: total})
	}
	return n, err
}

func (c *countingReader) Close() error { return c.rc.Close() }

// pin adds delta to the pin count of each non-empty key.
func (s *Store) pin(keys []string, delta int) {
	s.lockIndex()
	defer s.unlockIndex()
	for _, k := range keys {
		if k == "" {
			continue
		}
		s.pins[k] += delta
		if s.pins[k] <= 0 {
			delete(s.pins, k)
		}
	}
}

// writeBlob stores b under digest unless already present.
func (s *Store) writeBlob(digest string, b []byte) error {
	p := s.blobPath(digest)
	if _, err := os.Stat(p); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("write blob %s: %w", digest, err)
	}
	if err := writeFileAtomic(p, b); err != nil {
		return fmt.Errorf("write blob %s: %w", digest, err)
	}
	return nil
}
