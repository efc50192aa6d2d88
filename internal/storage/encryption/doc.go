// Package encryption encrypts chosen resources before they reach etcd, in
// the manner and stored format of kube-apiserver's encryption at rest:
// a stored value is "k8s:enc:<provider>:v1:<key name>:" followed by the
// ciphertext, so a value says which key sealed it and data written by one
// key stays readable while another takes over.
//
// Usage:
//
//  1. Get a Config: LoadConfig reads an apiserver.config.k8s.io/v1
//     EncryptionConfiguration file (kube-apiserver's
//     --encryption-provider-config), LoadOrCreateDefault writes one with a
//     fresh random key the first time and reads it afterwards. Both
//     validate the file and name the failing field.
//  2. Ask Config.For(groupResource) for a resource's Transformer: the first
//     provider of its list (and that provider's first key) encrypts every
//     write; every listed key decrypts; identity reads values stored before
//     encryption was turned on (and, listed first, writes plain text).
//  3. Wrap the storage.Store with NewStore, giving each encrypted
//     resource's key prefix its Transformer. Reads, lists, watches and
//     deletes come back decrypted, creates and updates go out encrypted;
//     keys under no prefix pass through unchanged.
//
// Providers: aesgcm (AES-GCM, 16, 24 or 32-byte keys, a random 12-byte
// nonce per write, the etcd key as additional data, exactly as
// kube-apiserver), secretbox (XSalsa20-Poly1305, 32-byte keys, a random
// 24-byte nonce) and identity. aescbc and kms are refused: CBC is
// unauthenticated and kube-apiserver deprecates it; peapod has no KMS
// plugin host.
//
// Key rotation is kube-apiserver's: add the new key first (the old one
// second), restart, rewrite every object of the resource (an update of an
// unchanged object still rewrites it when its stored value was sealed by
// another key: KV.Stale), then remove the old key and restart again.
package encryption
