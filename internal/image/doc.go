// Package image is peapod's content-addressed image store: it pulls images
// from registries (registry v2, token auth, mirrors, insecure registries),
// imports docker-archive and OCI-layout tarballs, unpacks layers with OCI
// whiteouts, and mounts an overlayfs rootfs per container.
//
// Use it in these steps:
//
//  1. Open the store once per node with NewStore(Options{Root:
//     <data-dir>/image-store, Mirrors: ..., Insecure: ...}). It creates the
//     layout below and clears scratch space a crash may have left.
//  2. At start-up, call ImportDir(ctx, <data-dir>/images) to load air-gapped
//     tarballs (*.tar, *.tar.gz, *.tgz). Bad files are logged and skipped;
//     files already imported (same size and mtime) are skipped cheaply.
//  3. For each container, resolve its image field: Get(ref) returns the stored
//     image (errors.Is(err, ErrNotFound) when absent) and Pull(ctx, ref,
//     progress) fetches it. References are normalized as the kubelet does
//     (Normalize: "busybox" is "docker.io/library/busybox:latest"). Pull tries
//     the registry's mirrors first, then the registry; plain http only for
//     hosts in Options.Insecure and mirrors written as http://. Every blob is
//     checked against its digest and every layer against its diffID.
//  4. Call PrepareRootfs(ctx, img, <container-dir>, nil) to mount the
//     image's layers read-only under a fresh writable upper dir at
//     <container-dir>/rootfs; pass that path as the OCI bundle's root. It is
//     idempotent, so a restarted node can call it again for a running
//     container. For a pod with its own user namespace, RemapOptions
//     idmap the layers into it and give it the upper dir.
//  5. When the container is deleted, call ReleaseRootfs(ctx, <container-dir>):
//     it unmounts and removes rootfs, upper and work, and is idempotent.
//  6. Remove(ctx, ref) untags or deletes an image and collects blobs and
//     layers nothing references; Prune(ctx) deletes every image no prepared
//     rootfs uses. Both refuse to touch images in use (ErrInUse).
//
// On disk, under Root:
//
//	index.json            images, names, rootfs uses, imported files (written atomically)
//	blobs/sha256/<hex>    manifests and configs, by digest
//	layers/<hex>          each layer unpacked once, by diffID (temp dir + rename)
//	tmp/                  scratch space for unpacking, imports and deletion
//
// A Store is safe for concurrent use by per-pod workers: the index is
// guarded by a mutex, concurrent pulls of the same layer unpack it once, and
// layers a running pull needs are pinned against Remove and Prune.
package image
