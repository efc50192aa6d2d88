package podfiles

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Limits on resolv.conf the kubelet applies (from libc's resolver).
const (
	MaxDNSNameservers     = 3
	MaxDNSSearchPaths     = 32
	MaxDNSSearchListChars = 2048
)

// defaultDNSOptions are the options of a ClusterFirst pod.
var defaultDNSOptions = []string{"ndots:5"}

// dnsConfig is the runtime's view of a pod's resolver settings (the CRI DNSConfig).
type dnsConfig struct {
	servers, searches, options []string
}

// ResolvConf returns the pod's /etc/resolv.conf as the kubelet (GetPodDNS)
// and containerd compose it:
//   - dnsPolicy Default: the node's nameservers, search and options
//     (hostResolv, parsed as the kubelet does: nameservers accumulate, the
//     last search line wins, options merge);
//   - ClusterFirst (also "" and ClusterFirstWithHostNet): nameservers are
//     clusterDNS, search is "<ns>.svc.<domain> svc.<domain> <domain>" then
//     the node's search, options "ndots:5". With clusterDNS empty it falls
//     back to Default, as the kubelet does (with a warning event);
//   - None: nothing but spec.dnsConfig.
//
// spec.dnsConfig is then merged for every policy: nameservers and searches
// appended without duplicates, options overriding by name. The result is
// trimmed to 3 nameservers, 32 search domains of at most 253 characters, and
// a 2048-character search line. The pod's dnsPolicy and dnsConfig are
// validated as the API server does first (None needs at least one nameserver,
// nameservers must be IPs, …); a violation is an error naming the field.
//
// The output has a "search" line, one "nameserver" line per server and an
// "options" line, each only when non-empty.
func ResolvConf(pod *corev1.Pod, hostResolv []byte, clusterDNS []string, clusterDomain string) ([]byte, error) {
	if errs := validateDNS(pod); len(errs) > 0 {
		return nil, fmt.Errorf("invalid pod DNS settings: %w", errs.ToAggregate())
	}
	host := parseResolvConf(hostResolv)
	var cfg dnsConfig
	switch pod.Spec.DNSPolicy {
	case corev1.DNSNone:
	case corev1.DNSDefault:
		cfg = host
	case corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, "":
		if pod.Spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet && pod.Spec.HostNetwork {
			cfg = host
			break
		}
		if len(clusterDNS) == 0 {
			cfg = host // the kubelet's fallback to Default
			break
		}
		cfg.servers = append([]string(nil), clusterDNS...)
		cfg.searches = host.searches
		if clusterDomain != "" {
			ns := pod.Namespace
			if ns == "" {
				ns = "default"
			}
			cluster := []string{ns + ".svc." + clusterDomain, "svc." + clusterDomain, clusterDomain}
			cfg.searches = omitDuplicates(append(cluster, host.searches...))
		}
		cfg.options = append([]string(nil), defaultDNSOptions...)
	default:
		return nil, fmt.Errorf("invalid dnsPolicy %q", pod.Spec.DNSPolicy)
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		cfg.servers = omitDuplicates(append(cfg.servers, dc.Nameservers...))
		cfg.searches = omitDuplicates(append(cfg.searches, dc.Searches...))
		cfg.options = mergeDNSOptions(cfg.options, dc.Options)
	}
	if len(cfg.servers) > MaxDNSNameservers {
		cfg.servers = cfg.servers[:MaxDNSNameservers]
	}
	cfg.searches = searchFitsLimits(cfg.searches)

	var b bytes.Buffer
	if len(cfg.searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(cfg.searches, " "))
	}
	for _, s := range cfg.servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(cfg.options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(cfg.options, " "))
	}
	return b.Bytes(), nil
}

// validateDNS applies the API server's dnsPolicy/dnsConfig validation.
func validateDNS(pod *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	fld := field.NewPath("spec", "dnsConfig")
	dc := pod.Spec.DNSConfig
	if pod.Spec.DNSPolicy == corev1.DNSNone {
		if dc == nil {
			return append(errs, field.Required(fld, "must provide `dnsConfig` when `dnsPolicy` is None"))
		}
		if len(dc.Nameservers) == 0 {
			return append(errs, field.Required(fld.Child("nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None"))
		}
	}
	if dc == nil {
		return nil
	}
	if len(dc.Nameservers) > MaxDNSNameservers {
		errs = append(errs, field.Invalid(fld.Child("nameservers"), dc.Nameservers, fmt.Sprintf("must not have more than %d nameservers", MaxDNSNameservers)))
	}
	for i, ns := range dc.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			errs = append(errs, field.Invalid(fld.Child("nameservers").Index(i), ns, "must be a valid IP address"))
		}
	}
	if len(dc.Searches) > MaxDNSSearchPaths {
		errs = append(errs, field.Invalid(fld.Child("searches"), dc.Searches, fmt.Sprintf("must not have more than %d search paths", MaxDNSSearchPaths)))
	}
	if len(strings.Join(dc.Searches, " ")) > MaxDNSSearchListChars {
		errs = append(errs, field.Invalid(fld.Child("searches"), dc.Searches, fmt.Sprintf("must not have more than %d characters (including spaces) in the search list", MaxDNSSearchListChars)))
	}
	for i, s := range dc.Searches {
		if s == "." {
			continue // allowed since RelaxedDNSSearchValidation
		}
		for _, msg := range validation.IsDNS1123Subdomain(strings.TrimSuffix(s, ".")) {
			errs = append(errs, field.Invalid(fld.Child("searches").Index(i), s, msg))
		}
	}
	for i, o := range dc.Options {
		if o.Name == "" {
			errs = append(errs, field.Required(fld.Child("options").Index(i), "must not be empty"))
		}
	}
	return errs
}

// parseResolvConf reads a resolv.conf as the kubelet does: "nameserver"
// lines accumulate, the last "search" line wins (trailing dots dropped, "."
// omitted), "options" lines merge (a later option overrides an earlier one
// of the same name). Comments and other lines are ignored.
func parseResolvConf(data []byte) dnsConfig {
	var c dnsConfig
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) >= 2 {
				c.servers = append(c.servers, f[1])
			}
		case "search":
			c.searches = nil
			for _, s := range f[1:] {
				if s != "." {
					c.searches = append(c.searches, strings.TrimSuffix(s, "."))
				}
			}
		case "options":
			for _, o := range f[1:] {
				c.options = mergeOption(c.options, o)
			}
		}
	}
	return c
}

// mergeOption adds option o ("name" or "name:value") to opts, replacing an
// option of the same name in place.
func mergeOption(opts []string, o string) []string {
	name, _, _ := strings.Cut(o, ":")
	for i, existing := range opts {
		if n, _, _ := strings.Cut(existing, ":"); n == name {
			opts[i] = o
			return opts
		}
	}
	return append(opts, o)
}

// mergeDNSOptions overrides existing options with the pod's, by name, keeping
// first-appearance order (the kubelet goes through a map; order does not
// matter to the resolver, but stable output does to tests).
func mergeDNSOptions(existing []string, pod []corev1.PodDNSConfigOption) []string {
	out := append([]string(nil), existing...)
	for _, o := range pod {
		s := o.Name
		if o.Value != nil && *o.Value != "" {
			s += ":" + *o.Value
		}
		out = mergeOption(out, s)
	}
	return out
}

func omitDuplicates(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// searchFitsLimits trims search domains as the kubelet's
// formDNSSearchFitsLimits: at most 32, none longer than 253 characters, and
// the joined line at most 2048 characters (dropping from the end).
func searchFitsLimits(search []string) []string {
	if len(search) > MaxDNSSearchPaths {
		search = search[:MaxDNSSearchPaths]
	}
	out := make([]string, 0, len(search))
	for _, s := range search {
		if len(s) <= validation.DNS1123SubdomainMaxLength {
			out = append(out, s)
		}
	}
	for len(out) > 0 && len(strings.Join(out, " ")) > MaxDNSSearchListChars {
		out = out[:len(out)-1]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Where the node's resolver configuration is read from.
const (
	// HostResolvConf is the usual resolv.conf.
	HostResolvConf = "/etc/resolv.conf"
	// SystemdResolvedConf lists systemd-resolved's real upstreams; its
	// /etc/resolv.conf names only its loopback stub (127.0.0.53), which a
	// pod cannot reach in its own network namespace.
	SystemdResolvedConf = "/run/systemd/resolve/resolv.conf"
)

// NodeResolvConfPath is the file the node's pods (dnsPolicy Default) and
// the cluster DNS's upstreams come from: systemd-resolved's upstream list
// when the node runs it, else /etc/resolv.conf, as kubeadm configures the
// kubelet's --resolv-conf and CoreDNS's guidance says.
func NodeResolvConfPath() string {
	if _, err := os.Stat(SystemdResolvedConf); err == nil {
		return SystemdResolvedConf
	}
	return HostResolvConf
}

// Nameservers returns the nameserver addresses of a resolv.conf, in order.
func Nameservers(data []byte) []string {
	return parseResolvConf(data).servers
}
