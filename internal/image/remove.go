package image

import (
	"context"
	"fmt"
	"os"
	"sort"
)

// Remove removes ref (a name, ID or digest reference). If ref is one of
// several names of an image, only that name is removed. Otherwise the image
// goes, unless a prepared rootfs uses it (an error wrapping ErrInUse), and so
// do the blobs and unpacked layers no remaining image references.
func (s *Store) Remove(ctx context.Context, ref string) error {
	s.lockIndex()
	rec, byName, err := s.findLocked(ref)
	if err != nil {
		s.unlockIndex()
		return fmt.Errorf("remove image: %w", err)
	}
	if byName != "" && len(rec.Names) > 1 {
		rec.Names = without(rec.Names, byName)
		err := s.saveLocked()
		s.unlockIndex()
		if err != nil {
			return fmt.Errorf("remove image %s: %w", ref, err)
		}
		return nil
	}
	if dirs := s.usersLocked(rec.ID); len(dirs) > 0 {
		s.unlockIndex()
		return fmt.Errorf("remove image %s: used by rootfs %v: %w", ref, dirs, ErrInUse)
	}
	delete(s.idx.Images, rec.ID)
	garbage, err := s.gcLocked()
	s.unlockIndex()
	removeAll(garbage)
	if err != nil {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	s.log.InfoContext(ctx, "removed image", "ref", ref, "id", rec.ID)
	return nil
}

// Prune removes every image no prepared rootfs uses, and the blobs and
// layers that leaves unreferenced. It returns the removed image IDs.
func (s *Store) Prune(ctx context.Context) ([]string, error) {
	s.lockIndex()
	var removed []string
	for id := range s.idx.Images {
		if len(s.usersLocked(id)) == 0 {
			delete(s.idx.Images, id)
			removed = append(removed, id)
		}
	}
	garbage, err := s.gcLocked()
	s.unlockIndex()
	removeAll(garbage)
	sort.Strings(removed)
	if err != nil {
		return removed, fmt.Errorf("prune images: %w", err)
	}
	s.log.InfoContext(ctx, "pruned images", "count", len(removed))
	return removed, nil
}

// usersLocked lists the rootfs dirs using image id.
func (s *Store) usersLocked(id string) []string {
	var dirs []string
	for dir, img := range s.idx.Rootfs {
		if img == id {
			dirs = append(dirs, dir)
		}
	}
	sort.Strings(dirs)
	return dirs
}

// gcLocked saves the index, then moves every layer dir and blob that no
// image references and no running pull has pinned into tmp, returning those
// paths for the caller to delete after unlocking. Callers hold lockIndex.
func (s *Store) gcLocked() ([]string, error) {
	keep := map[string]bool{}
	for k := range s.pins {
		keep[k] = true
	}
	for _, r := range s.idx.Images {
		keep[r.ID] = true
		keep[r.Manifest] = true
		for _, d := range r.DiffIDs {
			keep[d] = true
		}
	}
	for d := range s.idx.LayerSizes {
		if !keep[d] {
			delete(s.idx.LayerSizes, d)
		}
	}
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	var garbage []string
	for _, dir := range []string{s.path("layers"), s.path("blobs", "sha256")} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return garbage, err
		}
		for _, e := range entries {
			if keep["sha256:"+e.Name()] || e.Name()[0] == '.' { // dot files: writes in flight
				continue
			}
			trash, err := os.MkdirTemp(s.tmp, "gc-")
			if err != nil {
				return garbage, err
			}
			garbage = append(garbage, trash)
			if err := os.Rename(dir+"/"+e.Name(), trash+"/x"); err != nil {
				return garbage, err
			}
		}
	}
	return garbage, nil
}

func removeAll(paths []string) {
	for _, p := range paths {
		os.RemoveAll(p)
	}
}
