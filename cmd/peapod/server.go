package main

import (
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/peapod/peapod/internal/daemon"
)

func newServerCommand() *cobra.Command {
	var flags nodeFlags
	var cfg daemon.ServerConfig
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the API server, scheduler and controllers, and this machine's node",
		Long: `server runs a Kubernetes-compatible API (HTTPS, authenticated) with its
state in etcd (embedded in <data-dir>/etcd and reached only over TLS with
client certificates, unless --etcd-servers is given; Secrets encrypted at
rest), the scheduler, and, unless --disable-agent, the node agent for this
machine: one command, a working single-node cluster. Use it with kubectl
and <data-dir>/admin.kubeconfig.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			node, err := flags.node()
			if err != nil {
				return err
			}
			cfg.Node = node
			cfg.API.DataDir = node.DataDir
			// Kubernetes applies the default toleration at admission
			// (kube-apiserver) and the eviction in the controller.
			cfg.API.DefaultTolerationSeconds = cfg.DefaultTolerationSeconds
			cfg.Logger = slog.Default()
			return daemon.RunServer(cmd.Context(), cfg)
		},
	}
	flags.register(cmd.Flags())
	f := cmd.Flags()
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
	f.BoolVar(&cfg.DisableAgent, "disable-agent", false, "run only the control plane, no pods on this machine")
	f.DurationVar(&cfg.NodeMonitorGracePeriod, "node-monitor-grace-period", 40*time.Second, "how long a node may go without renewing its Lease before it is marked NotReady/Unknown")
	f.Int64Var(&cfg.DefaultTolerationSeconds, "default-toleration-seconds", 300, "how long pods without their own toleration stay on a not-ready or unreachable node before eviction")
	return cmd
}
