package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peapod/peapod/internal/network/netns"
	"github.com/peapod/peapod/internal/storage"
)

// An external etcd cluster, for clusters of several servers: each member
// is a "node" of role etcd (its own namespace on the underlay, its own
// address, data dir and log) running Debian's etcd with TLS on both its
// client and peer ports, client certificates required on both. Members
// are numbered from 1 and kept in State.Etcd; the node operations (stop,
// start, disconnect, connect, exec) work on them by name.
const (
	// EtcdBinary is the etcd the members run (Debian's etcd-server).
	EtcdBinary = "/usr/bin/etcd"
	// MaxEtcdMembers bounds --external-etcd by the member veths' names
	// (ppe-<name>-<j>) and by what a cluster on one machine needs.
	MaxEtcdMembers = 7
	etcdClientPort = 2379
	etcdPeerPort   = 2380
	roleEtcd       = "etcd"
	roleServer     = "server"
	roleAgent      = "agent"
)

// EtcdMemberName is the name of member j (from 1) of cluster name.
func EtcdMemberName(name string, j int) string { return fmt.Sprintf("%s-etcd%d", name, j) }

func etcdHostVeth(name string, j int) string { return fmt.Sprintf("ppe-%s-%d", name, j) }

// etcdAddrIndex places member j's address after every node's: the
// underlay's (MaxNodes+j)-th address.
func etcdAddrIndex(j int) int { return MaxNodes + j }

// ClientURL is an etcd member's client URL.
func (n *Node) ClientURL() string {
	return "https://" + net.JoinHostPort(n.Address, fmt.Sprint(etcdClientPort))
}

func (n *Node) peerURL() string {
	return "https://" + net.JoinHostPort(n.Address, fmt.Sprint(etcdPeerPort))
}

// EtcdEndpoints are the client URLs of the cluster's etcd members.
func (s *State) EtcdEndpoints() []string {
	var out []string
	for i := range s.Etcd {
		out = append(out, s.Etcd[i].ClientURL())
	}
	return out
}

// makeEtcdMember adds member j to st: its namespace, underlay link and
// data dir, each recorded before it is made.
func (st *State) makeEtcdMember(j int) (*Node, error) {
	_, underlay, err := net.ParseCIDR(st.Underlay)
	if err != nil {
		return nil, fmt.Errorf("cluster state: underlay %q: %w", st.Underlay, err)
	}
	addr, err := underlayAddr(underlay, etcdAddrIndex(j))
	if err != nil {
		return nil, err
	}
	name := EtcdMemberName(st.Name, j)
	st.Etcd = append(st.Etcd, Node{
		Index: j, Name: name, Role: roleEtcd,
		NetNS:    filepath.Join(netns.DefaultDir, netnsName(name)),
		HostVeth: etcdHostVeth(st.Name, j),
		Address:  addr.IP.String(),
		DataDir:  filepath.Join(st.Dir, name),
		Log:      filepath.Join(st.Dir, name, "etcd.log"),
	})
	m := &st.Etcd[len(st.Etcd)-1]
	if err := st.save(); err != nil {
		return nil, err
	}
	if _, err := netns.New(netns.DefaultDir, netnsName(name)); err != nil {
		return nil, fmt.Errorf("etcd member %s: %w", name, err)
	}
	if err := plugNode(m.NetNS, st.Bridge, m.HostVeth, addr, net.ParseIP(st.HostAddress)); err != nil {
		return nil, fmt.Errorf("etcd member %s: %w", name, err)
	}
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd member %s: %w", name, err)
	}
	return m, nil
}

// etcdArgs are member m's etcd flags: TLS with client certificates on the
// client and peer ports, the whole initial cluster, its own data dir. A
// restart with the same flags rejoins (etcd ignores the initial-cluster
// flags once its data dir holds a member).
func etcdArgs(st *State, m *Node) []string {
	var initial []string
	for i := range st.Etcd {
		initial = append(initial, st.Etcd[i].Name+"="+st.Etcd[i].peerURL())
	}
	ca := filepath.Join(st.EtcdPKI, etcdCAName+".crt")
	cert := filepath.Join(st.EtcdPKI, memberCertName(m.Name)+".crt")
	key := filepath.Join(st.EtcdPKI, memberCertName(m.Name)+".key")
	return []string{
		"--name", m.Name,
		"--data-dir", filepath.Join(m.DataDir, "data"),
		"--listen-client-urls", m.ClientURL(),
		"--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", m.peerURL(),
		"--initial-advertise-peer-urls", m.peerURL(),
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "peapod-" + st.Name,
		"--client-cert-auth", "--trusted-ca-file", ca, "--cert-file", cert, "--key-file", key,
		"--peer-client-cert-auth", "--peer-trusted-ca-file", ca, "--peer-cert-file", cert, "--peer-key-file", key,
		"--logger", "zap", "--log-outputs", "stderr",
	}
}

// startEtcd starts every member (they elect a leader once a quorum runs)
// and waits until the cluster serves linearizable reads through the API
// servers' client certificate.
func startEtcd(ctx context.Context, st *State) error {
	for i := range st.Etcd {
		m := &st.Etcd[i]
		m.Args = etcdArgs(st, m)
		if err := st.startProcess(m, EtcdBinary); err != nil {
			return err
		}
	}
	return waitEtcd(ctx, st, st.Etcd)
}

// waitEtcd waits until the etcd cluster answers a linearizable read
// through each of members, failing early (with its log) if one's process
// ends.
func waitEtcd(ctx context.Context, st *State, members []Node) error {
	tlsFiles, _ := st.EtcdClientTLS()
	var last error
	for {
		ready := 0
		for _, m := range members {
			if !m.running() {
				return fmt.Errorf("etcd member %s: etcd exited\n%s", m.Name, m.logTail())
			}
			if err := etcdAnswers(ctx, m.ClientURL(), tlsFiles); err != nil {
				last = fmt.Errorf("%s: %w", m.Name, err)
				break
			}
			ready++
		}
		if ready == len(members) {
			return nil
		}
		if err := sleep(ctx, pollInterval); err != nil {
			msg := []string{fmt.Sprintf("etcd not ready: %v (last: %v)", err, last)}
			for _, m := range members {
				msg = append(msg, m.logTail())
			}
			return errors.New(strings.Join(msg, "\n"))
		}
	}
}

// etcdAnswers reads the store's revision through endpoint alone.
func etcdAnswers(ctx context.Context, endpoint string, tlsFiles EtcdTLS) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := storage.NewEtcd(cctx, storage.EtcdConfig{Endpoints: []string{endpoint},
		CAFile: tlsFiles.CAFile, CertFile: tlsFiles.CertFile, KeyFile: tlsFiles.KeyFile, DialTimeout: 3 * time.Second})
	if err != nil {
		return err
	}
	return s.Close()
}

// serverEtcdArgs are the flags that put a server on the external etcd.
func serverEtcdArgs(st *State) []string {
	tlsFiles, ok := st.EtcdClientTLS()
	if !ok {
		return nil
	}
	return []string{"--etcd-servers", strings.Join(st.EtcdEndpoints(), ","),
		"--etcd-cafile", tlsFiles.CAFile, "--etcd-certfile", tlsFiles.CertFile, "--etcd-keyfile", tlsFiles.KeyFile}
}

// removeEtcdMember takes member m apart once its process has stopped:
// anything left in its namespace killed, then its veth, namespace and data
// dir removed. Each part already gone is skipped.
func removeEtcdMember(ctx context.Context, m *Node) error {
	if err := killProcessesIn(ctx, m.NetNS); err != nil {
		return fmt.Errorf("etcd member %s: %w", m.Name, err)
	}
	if err := removeLink(m.HostVeth); err != nil {
		return fmt.Errorf("etcd member %s: %w", m.Name, err)
	}
	if err := netns.Remove(m.NetNS); err != nil {
		return fmt.Errorf("etcd member %s: %w", m.Name, err)
	}
	if err := os.RemoveAll(m.DataDir); err != nil {
		return fmt.Errorf("etcd member %s: remove data dir: %w", m.Name, err)
	}
	m.PID, m.StartTime = 0, 0
	return nil
}
