package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/clusternetwork"
	"github.com/peapod/peapod/internal/daemon"
	"github.com/peapod/peapod/internal/dns"
	"github.com/peapod/peapod/internal/leaderelect"
	"github.com/peapod/peapod/internal/storage"
)

func newServerCommand() *cobra.Command {
	var flags nodeFlags
	var cfg daemon.ServerConfig
	var clusterDNS string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the API server, scheduler and controllers, and this machine's node",
		Long: `server runs a Kubernetes-compatible API (HTTPS, authenticated) with its
state in etcd (embedded in <data-dir>/etcd and reached only over TLS with
client certificates, unless --etcd-servers is given; Secrets encrypted at
rest), the scheduler and controllers, the cluster DNS, and, unless
--disable-agent, the node agent for this machine: one command, a working
single-node cluster. Use it with kubectl and <data-dir>/admin.kubeconfig.
The cluster's network settings (--cluster-cidr, --node-cidr-mask-size,
--service-cidr, --network-backend) are published in ConfigMap
kube-system/peapod-network and fixed for the cluster's life: a restart
with other values is refused.

The cluster DNS answers <service>.<namespace>.svc.<cluster-domain> and the
other names of the Kubernetes DNS specification on this node's address,
port --cluster-dns-port (UDP and TCP), behind Service kube-system/kube-dns
(ClusterIP --cluster-dns), and forwards every other name to the node's
resolvers (or --cluster-dns-upstream). Pods with dnsPolicy ClusterFirst get
it as their nameserver.

Several servers can share one external etcd (--etcd-servers): the API
serves on each, and the scheduler and controllers run on one at a time,
elected with Leases in kube-system. Every server of a cluster needs the
first one's <data-dir>/pki/{ca.crt,ca.key,sa.key,encryption-config.yaml},
copied before its first start; a server with another is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			node, err := flags.node()
			if err != nil {
				return err
			}
			cfg.Node = node
			if clusterDNS != "" {
				if cfg.DNS.ClusterDNS, err = netip.ParseAddr(clusterDNS); err != nil {
					return fmt.Errorf("--cluster-dns %q: not an IP address", clusterDNS)
				}
			}
			cfg.API.DataDir = node.DataDir
			// Kubernetes applies the default toleration at admission
			// (kube-apiserver) and the eviction in the controller.
			cfg.API.DefaultTolerationSeconds = cfg.DefaultTolerationSeconds
			cfg.Logger = slog.Default()
			return daemon.RunServer(cmd.Context(), cfg)
		},
	}
	flags.register(cmd.Flags())
	flags.registerNodeIP(cmd.Flags())
	f := cmd.Flags()
	cfg.Network = clusternetwork.Defaults()
	f.StringVar(&cfg.Network.ClusterCIDR, "cluster-cidr", cfg.Network.ClusterCIDR, "the cluster's pod network: every node's pod range (podCIDR) is cut from it, and traffic within it is never masqueraded")
	f.IntVar(&cfg.Network.NodeCIDRMaskSize, "node-cidr-mask-size", cfg.Network.NodeCIDRMaskSize, "prefix length of each node's pod range (24: up to 253 pods a node)")
	f.StringVar(&cfg.Network.ServiceCIDR, "service-cidr", cfg.Network.ServiceCIDR, "range of Service ClusterIPs; must not overlap --cluster-cidr")
	f.StringVar(&cfg.Network.Backend, "network-backend", cfg.Network.Backend, "how pod traffic crosses between nodes: vxlan, host-gw, or none (left to your own CNI config)")
	// Every address, as kube-apiserver's --bind-address: pods reach the API
	// through the kubernetes Service at the advertised address, and other
	// machines' nodes at the node's. Every request needs a credential.
	f.StringVar(&cfg.API.Listen, "listen", "0.0.0.0:6443", "address of the HTTPS API")
	f.StringVar(&cfg.API.AdvertiseAddress, "advertise-address", "", "IPv4 address pods reach the API at, through the kubernetes Service (default: --listen's address if specific, else the default route's interface's)")
	f.StringSliceVar(&cfg.API.EtcdServers, "etcd-servers", nil, "external etcd endpoints (default: embedded etcd in <data-dir>/etcd)")
	f.StringVar(&cfg.API.EtcdCAFile, "etcd-cafile", "", "CA bundle that signed the external etcd's serving certificates")
	f.StringVar(&cfg.API.EtcdCertFile, "etcd-certfile", "", "client certificate for the external etcd (with --etcd-keyfile)")
	f.StringVar(&cfg.API.EtcdKeyFile, "etcd-keyfile", "", "client key for the external etcd (with --etcd-certfile)")
	f.StringVar(&cfg.API.EncryptionProviderConfig, "encryption-provider-config", "", "apiserver.config.k8s.io/v1 EncryptionConfiguration: which resources are encrypted at rest, with which keys (default: <data-dir>/pki/encryption-config.yaml, generated with a random key, encrypting Secrets)")
	f.StringVar(&cfg.API.TokenFile, "token-file", "", "static bearer tokens (token,user,uid,\"group1,group2\")")
	f.StringVar(&clusterDNS, "cluster-dns", "", "ClusterIP of the kube-dns Service, the nameserver of ClusterFirst pods (default: the 10th address of the Service range, 10.96.0.10)")
	f.StringVar(&cfg.DNS.ClusterDomain, "cluster-domain", dns.DefaultClusterDomain, "the cluster's DNS domain: <service>.<namespace>.svc.<domain>, and the pods' search path")
	f.IntVar(&cfg.DNS.Port, "cluster-dns-port", dns.DefaultPort, "port the cluster DNS listens on, UDP and TCP, on this node's address; kube-dns's port 53 leads to it")
	f.StringSliceVar(&cfg.DNS.Upstreams, "cluster-dns-upstream", nil, "resolvers (IP or IP:PORT) for names outside the cluster (default: the nameservers of /etc/resolv.conf, or of /run/systemd/resolve/resolv.conf when systemd-resolved runs)")
	f.BoolVar(&cfg.DisableAgent, "disable-agent", false, "run only the control plane, no pods on this machine")
	f.DurationVar(&cfg.NodeMonitorGracePeriod, "node-monitor-grace-period", 40*time.Second, "how long a node may go without renewing its Lease before it is marked NotReady/Unknown")
	f.Int64Var(&cfg.DefaultTolerationSeconds, "default-toleration-seconds", 300, "how long pods without their own toleration stay on a not-ready or unreachable node before eviction")
	f.Int64Var(&cfg.API.EtcdQuotaBackendBytes, "etcd-quota-backend-bytes", storage.DefaultQuotaBackendBytes, "space quota of the embedded etcd's database: past it etcd refuses writes until the server has compacted and defragmented it (shown by peapod ps)")
	f.DurationVar(&cfg.API.EventTTL, "event-ttl", apiserver.DefaultEventTTL, "how long Events are kept after their last write; etcd deletes them then, so they do not pile up")
	f.DurationVar(&cfg.API.EtcdCompactionInterval, "etcd-compaction-interval", storage.DefaultCompactionInterval, "how often the servers compact an external etcd's history (the embedded etcd compacts itself)")
	f.BoolVar(&cfg.LeaderElect, "leader-elect", true, "run the scheduler and controllers only while this server holds their Leases (kube-system/kube-scheduler, kube-system/kube-controller-manager), so that of several servers on one etcd exactly one runs each")
	f.DurationVar(&cfg.LeaderElection.LeaseDuration, "leader-elect-lease-duration", leaderelect.DefaultLeaseDuration, "how long the other servers wait before taking over the Leases of a leader that stopped renewing them")
	f.DurationVar(&cfg.LeaderElection.RenewDeadline, "leader-elect-renew-deadline", leaderelect.DefaultRenewDeadline, "how long a leader retries renewing before it stops its scheduler and controllers")
	f.DurationVar(&cfg.LeaderElection.RetryPeriod, "leader-elect-retry-period", leaderelect.DefaultRetryPeriod, "how often servers try to acquire or renew the Leases")
	return cmd
}
