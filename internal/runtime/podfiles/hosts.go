package podfiles

import (
	"bytes"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultClusterDomain is the cluster domain Hostname assumes.
const DefaultClusterDomain = "cluster.local"

// hostnameMaxLen is the kernel's limit on a nodename (64 bytes with NUL).
const hostnameMaxLen = 63

// fqdnMaxLen is the limit the kubelet puts on a hostname set as FQDN.
const fqdnMaxLen = 64

// Hosts returns the kubelet-managed /etc/hosts for a pod: the
// "# Kubernetes-managed hosts file." header, the localhost and IPv6
// well-known lines, one line per pod IP naming the pod ("<ip>\t<fqdn>\t<short>"
// when fqdn is set, "<ip>\t<hostname>" otherwise), then spec.hostAliases under
// "# Entries added by HostAliases.", one line per alias with its hostnames
// tab-separated, exactly as kubelet_pods.go writes it.
//
// hostname and fqdn are what Hostname returns; when hostname is already the
// FQDN (setHostnameAsFQDN) the short name is its first label.
func Hosts(pod *corev1.Pod, podIPs []string, hostname, fqdn string) []byte {
	var b bytes.Buffer
	b.WriteString("# Kubernetes-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	short := hostname
	if fqdn != "" && hostname == fqdn {
		short, _, _ = strings.Cut(fqdn, ".")
	}
	for _, ip := range podIPs {
		if fqdn != "" && fqdn != short {
			fmt.Fprintf(&b, "%s\t%s\t%s\n", ip, fqdn, short)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", ip, short)
		}
	}
	writeHostAliases(&b, pod)
	return b.Bytes()
}

// HostNetworkHosts returns a hostNetwork pod's /etc/hosts as the kubelet
// writes it (nodeHostsFileContent): the header "# Kubernetes-managed hosts
// file (host network).", the node's own hosts file as is, then
// spec.hostAliases as Hosts adds them.
func HostNetworkHosts(pod *corev1.Pod, nodeHosts []byte) []byte {
	var b bytes.Buffer
	b.WriteString("# Kubernetes-managed hosts file (host network).\n")
	b.Write(nodeHosts)
	writeHostAliases(&b, pod)
	return b.Bytes()
}

func writeHostAliases(b *bytes.Buffer, pod *corev1.Pod) {
	if pod == nil || len(pod.Spec.HostAliases) == 0 {
		return
	}
	b.WriteString("\n# Entries added by HostAliases.\n")
	for _, a := range pod.Spec.HostAliases {
		fmt.Fprintf(b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
	}
}

// Hostname is HostnameInDomain with DefaultClusterDomain.
func Hostname(pod *corev1.Pod) (hostname, fqdn string, err error) {
	return HostnameInDomain(pod, DefaultClusterDomain)
}

// HostnameInDomain returns the hostname the pod's UTS namespace gets and the
// pod's FQDN, following the kubelet (GeneratePodHostNameAndDomain and
// GetNodenameForKernel):
//   - hostname is spec.hostname, else the pod name, truncated to 63 bytes
//     with trailing '-' and '.' trimmed;
//   - with spec.subdomain, fqdn is "<hostname>.<subdomain>.<ns>.svc.<clusterDomain>",
//     else "";
//   - with spec.setHostnameAsFQDN and a subdomain, hostname is the fqdn, and
//     an fqdn over 64 bytes is an error.
//
// spec.hostname and spec.subdomain must be DNS-1123 labels.
func HostnameInDomain(pod *corev1.Pod, clusterDomain string) (hostname, fqdn string, err error) {
	hostname = pod.Name
	if pod.Spec.Hostname != "" {
		if msgs := validation.IsDNS1123Label(pod.Spec.Hostname); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod Hostname %q is not a valid DNS label: %s", pod.Spec.Hostname, strings.Join(msgs, ";"))
		}
		hostname = pod.Spec.Hostname
	}
	if len(hostname) > hostnameMaxLen {
		hostname = strings.TrimRight(hostname[:hostnameMaxLen], "-.")
	}
	if hostname == "" {
		return "", "", fmt.Errorf("hostname for pod %q is empty", pod.Name)
	}
	if pod.Spec.Subdomain == "" {
		return hostname, "", nil
	}
	if msgs := validation.IsDNS1123Label(pod.Spec.Subdomain); len(msgs) != 0 {
		return "", "", fmt.Errorf("pod Subdomain %q is not a valid DNS label: %s", pod.Spec.Subdomain, strings.Join(msgs, ";"))
	}
	ns := pod.Namespace
	if ns == "" {
		ns = "default"
	}
	fqdn = fmt.Sprintf("%s.%s.%s.svc.%s", hostname, pod.Spec.Subdomain, ns, clusterDomain)
	if pod.Spec.SetHostnameAsFQDN != nil && *pod.Spec.SetHostnameAsFQDN {
		if len(fqdn) > fqdnMaxLen {
			return "", "", fmt.Errorf("failed to construct FQDN from pod hostname and cluster domain, FQDN %s is too long (%d characters is the max, %d characters requested)", fqdn, fqdnMaxLen, len(fqdn))
		}
		hostname = fqdn
	}
	return hostname, fqdn, nil
}
