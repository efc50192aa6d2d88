package encryption

import (
	"encoding/base64"
	"fmt"
	"os"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// The apiserver.config.k8s.io/v1 EncryptionConfiguration format, as
// kube-apiserver reads it from --encryption-provider-config. These are our
// own types: k8s.io/apiserver's would bring that whole module (and its
// dependencies) for a dozen fields.

// APIVersion and Kind of an EncryptionConfiguration file.
const (
	APIVersion = "apiserver.config.k8s.io/v1"
	Kind       = "EncryptionConfiguration"
)

// EncryptionConfiguration lists resources and the providers that encrypt them.
type EncryptionConfiguration struct {
	APIVersion string                  `json:"apiVersion"`
	Kind       string                  `json:"kind"`
	Resources  []ResourceConfiguration `json:"resources"`
}

// ResourceConfiguration is one entry: resources ("secrets",
// "deployments.apps", "*.apps", "*." for the core group, "*.*") and their
// providers, the first of which encrypts.
type ResourceConfiguration struct {
	Resources []string                `json:"resources"`
	Providers []ProviderConfiguration `json:"providers"`
}

// ProviderConfiguration sets exactly one provider.
type ProviderConfiguration struct {
	AESGCM    *KeysConfiguration `json:"aesgcm,omitempty"`
	AESCBC    *KeysConfiguration `json:"aescbc,omitempty"`
	Secretbox *KeysConfiguration `json:"secretbox,omitempty"`
	Identity  *struct{}          `json:"identity,omitempty"`
	KMS       map[string]any     `json:"kms,omitempty"`
}

// KeysConfiguration is the key list of aesgcm, aescbc or secretbox; the
// first key encrypts.
type KeysConfiguration struct {
	Keys []Key `json:"keys"`
}

// Key is a named secret, base64-encoded.
type Key struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

// Config is a validated EncryptionConfiguration, ready to give each
// resource its Transformer.
type Config struct {
	entries []entry
}

type entry struct {
	index     int
	resources []schema.GroupResource
	names     []string
	chain     chain
}

// Entry is one resources entry of a Config, for callers that check the
// names against the resources they serve.
type Entry struct {
	// Field is the entry's path in the file, "resources[0].resources".
	Field string
	// Resources are the entry's names as written.
	Resources []string
}

// LoadConfig reads and validates an EncryptionConfiguration file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read encryption config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("encryption config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig validates an EncryptionConfiguration (YAML or JSON). Unknown
// fields are refused, so a misspelt provider is not silently ignored; every
// failure names its field. Secrets never appear in errors.
func ParseConfig(data []byte) (*Config, error) {
	var ec EncryptionConfiguration
	if err := yaml.UnmarshalStrict(data, &ec); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if errs := validate(&ec); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	c := &Config{}
	root := field.NewPath("resources")
	for i, rc := range ec.Resources {
		e := entry{index: i, names: rc.Resources}
		for _, name := range rc.Resources {
			e.resources = append(e.resources, schema.ParseGroupResource(name))
		}
		for j, p := range rc.Providers {
			keys, err := providerKeys(p, root.Index(i).Child("providers").Index(j))
			if err != nil {
				return nil, err
			}
			e.chain = append(e.chain, keys...)
		}
		c.entries = append(c.entries, e)
	}
	if err := c.checkMasking(); err != nil {
		return nil, err
	}
	return c, nil
}

// For returns the Transformer of the first entry that names gr (exactly,
// by "*.<group>" or by "*.*"), or nil when no entry does: the resource is
// stored as it is.
func (c *Config) For(gr schema.GroupResource) Transformer {
	if c == nil {
		return nil
	}
	for _, e := range c.entries {
		for _, r := range e.resources {
			if matches(r, gr) {
				return e.chain
			}
		}
	}
	return nil
}

// Entries lists the configuration's resources entries in order.
func (c *Config) Entries() []Entry {
	var out []Entry
	for _, e := range c.entries {
		out = append(out, Entry{Field: field.NewPath("resources").Index(e.index).Child("resources").String(), Resources: e.names})
	}
	return out
}

func matches(pattern, gr schema.GroupResource) bool {
	if pattern.Group != "*" && pattern.Group != gr.Group {
		return false
	}
	return pattern.Resource == "*" || pattern.Resource == gr.Resource
}

// checkMasking refuses a name that an earlier entry already covers: its
// providers would never be used.
func (c *Config) checkMasking() error {
	for i, e := range c.entries {
		for j, r := range e.resources {
			for _, earlier := range c.entries[:i] {
				for k, er := range earlier.resources {
					if matches(er, r) {
						return field.Invalid(field.NewPath("resources").Index(e.index).Child("resources").Index(j), e.names[j],
							fmt.Sprintf("masked by %s %q, which comes earlier and covers it", field.NewPath("resources").Index(earlier.index).Child("resources").Index(k), earlier.names[k]))
					}
				}
			}
		}
	}
	return nil
}

const (
	aesKeyLenErr = "secret is not of the expected length, got %d, expected one of %v"
	oneProvider  = "more than one provider specified in a single element, should split into different list elements"
)

// validate checks the file as kube-apiserver does, in its words.
func validate(ec *EncryptionConfiguration) field.ErrorList {
	var errs field.ErrorList
	if ec.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), ec.APIVersion, []string{APIVersion}))
	}
	if ec.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), ec.Kind, []string{Kind}))
	}
	root := field.NewPath("resources")
	if len(ec.Resources) == 0 {
		return append(errs, field.Required(root, "at least one resources entry is required"))
	}
	for i, rc := range ec.Resources {
		rp, pp := root.Index(i).Child("resources"), root.Index(i).Child("providers")
		if len(rc.Resources) == 0 {
			errs = append(errs, field.Required(rp, "at least one resource is required"))
		}
		errs = append(errs, validateResourceNames(rc.Resources, rp)...)
		if len(rc.Providers) == 0 {
			errs = append(errs, field.Required(pp, "at least one provider is required"))
		}
		for j, p := range rc.Providers {
			errs = append(errs, validateProvider(p, pp.Index(j))...)
		}
	}
	return errs
}

func validateResourceNames(names []string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[schema.GroupResource]bool{}
	for j, name := range names {
		p := path.Index(j)
		gr := schema.ParseGroupResource(name)
		switch {
		case name == "":
			errs = append(errs, field.Required(p, "a resource name is required"))
		case strings.ToLower(name) != name:
			errs = append(errs, field.Invalid(p, name, "resource name should not contain capital letters"))
		case name == "*":
			errs = append(errs, field.Invalid(p, name, "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"))
		case gr.Group == "events.k8s.io":
			errs = append(errs, field.Invalid(p, name, "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file"))
		case gr.Group == "*" && gr.Resource != "*":
			errs = append(errs, field.Invalid(p, name, "encrypting the same resource across groups is not supported"))
		case seen[gr]:
			errs = append(errs, field.Duplicate(p, name))
		}
		seen[gr] = true
	}
	for j, name := range names {
		gr := schema.ParseGroupResource(name)
		for k, other := range names {
			if j != k && gr != schema.ParseGroupResource(other) && matches(gr, schema.ParseGroupResource(other)) {
				errs = append(errs, field.Invalid(path.Index(k), other,
					fmt.Sprintf("using overlapping resources such as %q and %q in the same resource list is not allowed as they will be masked", other, name)))
			}
		}
	}
	return errs
}

func validateProvider(p ProviderConfiguration, path *field.Path) field.ErrorList {
	set := 0
	for _, isSet := range []bool{p.AESGCM != nil, p.AESCBC != nil, p.Secretbox != nil, p.Identity != nil, p.KMS != nil} {
		if isSet {
			set++
		}
	}
	switch {
	case set == 0:
		return field.ErrorList{field.Required(path, "provider does not contain any of the expected providers: aesgcm, secretbox, identity")}
	case set > 1:
		return field.ErrorList{field.Invalid(path, "", oneProvider)}
	case p.AESCBC != nil:
		return field.ErrorList{field.NotSupported(path.Child("aescbc"), "aescbc", []string{"aesgcm", "secretbox", "identity"})}
	case p.KMS != nil:
		return field.ErrorList{field.NotSupported(path.Child("kms"), "kms", []string{"aesgcm", "secretbox", "identity"})}
	case p.AESGCM != nil:
		return validateKeys(p.AESGCM.Keys, path.Child("aesgcm", "keys"), []int{16, 24, 32})
	case p.Secretbox != nil:
		return validateKeys(p.Secretbox.Keys, path.Child("secretbox", "keys"), []int{32})
	}
	return nil
}

func validateKeys(keys []Key, path *field.Path, sizes []int) field.ErrorList {
	if len(keys) == 0 {
		return field.ErrorList{field.Required(path, "at least one key is required")}
	}
	var errs field.ErrorList
	names := map[string]bool{}
	for i, k := range keys {
		p := path.Index(i)
		switch {
		case k.Name == "":
			errs = append(errs, field.Required(p.Child("name"), "name is a mandatory field for a key"))
		case strings.Contains(k.Name, ":"):
			// The name sits between colons in every stored value's prefix.
			errs = append(errs, field.Invalid(p.Child("name"), k.Name, "must not contain ':'"))
		case names[k.Name]:
			errs = append(errs, field.Duplicate(p.Child("name"), k.Name))
		}
		names[k.Name] = true
		if k.Secret == "" {
			errs = append(errs, field.Required(p.Child("secret"), "secret is a mandatory field for a key"))
			continue
		}
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			errs = append(errs, field.Invalid(p.Child("secret"), "REDACTED", "secrets must be base64 encoded"))
			continue
		}
		if !slices.Contains(sizes, len(secret)) {
			errs = append(errs, field.Invalid(p.Child("secret"), "REDACTED", fmt.Sprintf(aesKeyLenErr, len(secret), sizes)))
		}
	}
	return errs
}

// providerKeys turns a validated provider into its keys, in order.
func providerKeys(p ProviderConfiguration, path *field.Path) ([]prefixed, error) {
	switch {
	case p.Identity != nil:
		return []prefixed{{sealer: identity{}}}, nil
	case p.AESGCM != nil:
		var out []prefixed
		for i, k := range p.AESGCM.Keys {
			secret, _ := base64.StdEncoding.DecodeString(k.Secret)
			g, err := newAESGCM(k.Name, secret)
			if err != nil {
				return nil, field.Invalid(path.Child("aesgcm", "keys").Index(i).Child("secret"), "REDACTED", err.Error())
			}
			out = append(out, prefixed{prefix: []byte(encryptedPrefix + "aesgcm:v1:" + k.Name + ":"), sealer: g})
		}
		return out, nil
	case p.Secretbox != nil:
		var out []prefixed
		for _, k := range p.Secretbox.Keys {
			secret, _ := base64.StdEncoding.DecodeString(k.Secret)
			s := &secretBox{name: k.Name}
			copy(s.key[:], secret)
			out = append(out, prefixed{prefix: []byte(encryptedPrefix + "secretbox:v1:" + k.Name + ":"), sealer: s})
		}
		return out, nil
	}
	return nil, field.InternalError(path, fmt.Errorf("no provider"))
}
