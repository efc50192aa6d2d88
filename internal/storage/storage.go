// Package storage is the API server's persistence: a small key/value
// interface with optimistic concurrency and ordered watches, implemented on
// etcd v3 (embedded or external) and in memory for handler tests.
//
// Usage:
//
//  1. Open a Store: NewEtcd for an external cluster, StartEmbedded for an
//     etcd inside the process (its Store method gives the Store), or NewMemory
//     for tests.
//  2. Keys are opaque strings; the API server uses
//     /registry/<resource>/<namespace>/<name>. Values are opaque bytes.
//  3. Every write returns the store revision it happened at; Get and List
//     report each item's modification revision, which the API server exposes
//     as metadata.resourceVersion. Revisions increase strictly.
//  4. Watch(prefix, rev) delivers every change with revision > rev, in order,
//     exactly once. If rev is older than the compacted history the channel
//     yields one Event with Err set to ErrCompacted and is closed.
//  5. Reads are never older than what the store has already told anyone: a
//     Get or List after a write returned, or after a Watch delivered a
//     revision, shows that revision or a newer one (Kubernetes' "most
//     recent" read, which a client acting on a watch event relies on).
//
// Errors are the sentinels below, wrapped with context; test with errors.Is.
// Mapping them to HTTP status codes is the API layer's business.
package storage

import (
	"context"
	"errors"
)

// Sentinel errors returned (wrapped) by every Store implementation.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: Create found the key already present.
	ErrExists = errors.New("already exists")
	// ErrConflict: the expected revision did not match the stored one.
	ErrConflict = errors.New("revision conflict")
	// ErrCompacted: the requested revision is older than the retained history.
	ErrCompacted = errors.New("revision compacted")
	// ErrTooLarge: the store refuses a write this large (etcd's
	// --max-request-bytes). It is the client's error, not the store's.
	ErrTooLarge = errors.New("request is too large for the store")
	// ErrUnavailable: the store did not answer in time (etcd without
	// quorum or out of reach).
	ErrUnavailable = errors.New("the state store is unavailable")
)

// MaxRequestBytes is the largest write the embedded etcd takes (etcd's own
// default --max-request-bytes, set explicitly so that the in-memory store
// refuses the same writes).
const MaxRequestBytes = 3 << 19 // 1.5 MiB

// KV is one stored value with the revision of its last modification.
type KV struct {
	Key   string
	Value []byte
	// Revision is the store revision of the last write to this key.
	Revision int64
	// Stale is set by the encrypting Store (storage/encryption) when the
	// value was sealed by a key other than the one that writes now, or
	// stored before encryption: writing it back, even unchanged, moves it
	// to the current key.
	Stale bool
}

// ListOptions narrows a List.
type ListOptions struct {
	// Revision reads the snapshot at that revision; 0 reads the latest.
	// A compacted revision gives ErrCompacted.
	Revision int64
	// StartKey (inclusive) continues a previous page; empty starts at the prefix.
	StartKey string
	// Limit caps the number of items; 0 means no limit.
	Limit int64
}

// ListResult is one page of a List.
type ListResult struct {
	Items []KV
	// Revision is the snapshot the page was read at; pass it back in
	// ListOptions.Revision to read the next page consistently.
	Revision int64
	// More reports that items remain after the last one returned.
	More bool
}

// EventType says what happened to a key.
type EventType int

// Event types.
const (
	EventPut EventType = iota + 1
	EventDelete
)

// Event is one change seen by a watch.
type Event struct {
	Type EventType
	// KV is the new value for EventPut; for EventDelete it holds the key,
	// the deleted value and the revision of the deletion.
	KV KV
	// Prev is the value before the change, if any (Value nil when the key
	// was created by this event).
	Prev KV
	// Created reports that the key did not exist before this put.
	Created bool
	// Err ends the stream; the channel is closed right after.
	Err error
}

// Store is the persistence the API server needs. Implementations are safe
// for concurrent use; every blocking method honours ctx.
type Store interface {
	// Get returns the current value of key, or ErrNotFound. It reflects
	// at least every revision a write or a Watch of this store has
	// already returned.
	Get(ctx context.Context, key string) (KV, error)
	// List returns the keys under prefix in key order, with the same
	// freshness as Get when opts.Revision is 0.
	List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error)
	// Create stores value under key if the key is absent (else ErrExists)
	// and returns the new revision.
	Create(ctx context.Context, key string, value []byte, opts ...WriteOption) (int64, error)
	// Update replaces the value of an existing key (else ErrNotFound). If
	// expectedRevision is not 0 it must equal the key's current revision,
	// else ErrConflict. It returns the new revision.
	Update(ctx context.Context, key string, value []byte, expectedRevision int64, opts ...WriteOption) (int64, error)
	// Delete removes key (ErrNotFound if absent) and returns the deleted
	// value with the revision of the deletion. If expectedRevision is not 0
	// it must equal the key's current revision, else ErrConflict.
	Delete(ctx context.Context, key string, expectedRevision int64) (KV, error)
	// Watch streams the changes under prefix with revision > afterRevision
	// until ctx is cancelled, then closes the channel.
	Watch(ctx context.Context, prefix string, afterRevision int64) (<-chan Event, error)
	// CurrentRevision returns the latest revision of the store.
	CurrentRevision(ctx context.Context) (int64, error)
	// Close releases the store's resources. It is idempotent.
	Close() error
}
