package nodenet

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Files in the state dir.
const (
	// macFile holds the VTEP MAC, one line. It survives Teardown, so a
	// node set up again keeps the MAC its peers know.
	macFile = "vtep-mac"
	// configFile records the Config Setup applied, for Load.
	configFile = "network.json"
	// peersFile records the peers Sync last programmed, for Status.
	peersFile = "peers.json"
)

// recordedConfig is configFile's content: the Config minus what belongs
// to the caller (state dir, namespace).
type recordedConfig struct {
	Backend         Backend         `json:"backend"`
	NodeName        string          `json:"nodeName"`
	NodeIP          string          `json:"nodeIP,omitempty"`
	PodCIDR         string          `json:"podCIDR"`
	ClusterCIDR     string          `json:"clusterCIDR"`
	Device          string          `json:"device"`
	ChecksumOffload ChecksumOffload `json:"checksumOffload,omitempty"`
}

func writeConfig(s settings) error {
	data, err := json.MarshalIndent(recordedConfig{
		Backend: s.Backend, NodeName: s.NodeName, NodeIP: s.NodeIP, PodCIDR: s.PodCIDR,
		ClusterCIDR: s.ClusterCIDR, Device: s.Device, ChecksumOffload: s.ChecksumOffload,
	}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.StateDir, configFile), append(data, '\n'))
}

func readConfig(stateDir string) (Config, error) {
	path := filepath.Join(stateDir, configFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read the pod network's record: %w", err)
	}
	var rc recordedConfig
	if err := json.Unmarshal(data, &rc); err != nil {
		return Config{}, fmt.Errorf("read %s: %w", path, err)
	}
	return Config{
		Backend: rc.Backend, NodeName: rc.NodeName, NodeIP: rc.NodeIP, PodCIDR: rc.PodCIDR,
		ClusterCIDR: rc.ClusterCIDR, Device: rc.Device, ChecksumOffload: rc.ChecksumOffload,
	}, nil
}

// recordedPeer is one entry of peersFile.
type recordedPeer struct {
	Name    string `json:"name"`
	NodeIP  string `json:"nodeIP"`
	PodCIDR string `json:"podCIDR"`
	VTEPMAC string `json:"vtepMAC,omitempty"`
}

func encodePeers(peers []Peer) ([]byte, error) {
	out := make([]recordedPeer, 0, len(peers))
	for _, p := range peers {
		r := recordedPeer{Name: p.Name, NodeIP: p.NodeIP.String(), PodCIDR: p.PodCIDR.String()}
		if p.VTEPMAC != nil {
			r.VTEPMAC = p.VTEPMAC.String()
		}
		out = append(out, r)
	}
	data, err := json.MarshalIndent(out, "", "  ")
	return append(data, '\n'), err
}

// readPeers returns the peers Sync last recorded; none when there is no
// record. Entries that do not parse are skipped: the record is for display.
func readPeers(stateDir string) ([]Peer, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, peersFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read recorded peers: %w", err)
	}
	var recs []recordedPeer
	if err := json.Unmarshal(data, &recs); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(stateDir, peersFile), err)
	}
	var peers []Peer
	for _, r := range recs {
		p := Peer{Name: r.Name}
		var err1, err2 error
		p.NodeIP, err1 = netip.ParseAddr(r.NodeIP)
		p.PodCIDR, err2 = netip.ParsePrefix(r.PodCIDR)
		if err1 != nil || err2 != nil {
			continue
		}
		if r.VTEPMAC != "" {
			p.VTEPMAC, _ = net.ParseMAC(r.VTEPMAC)
		}
		peers = append(peers, p)
	}
	return peers, nil
}

// readMAC returns the recorded VTEP MAC, or nil when none is recorded. A
// record that does not parse is an error naming the file: silently making
// a new MAC would strand every peer's FDB entry for this node.
func readMAC(stateDir string) (net.HardwareAddr, error) {
	path := filepath.Join(stateDir, macFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read VTEP MAC: %w", err)
	}
	mac, err := parseVTEPMAC(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("VTEP MAC record %s: %w (remove the file to make a new MAC)", path, err)
	}
	return mac, nil
}

func writeMAC(stateDir string, mac net.HardwareAddr) error {
	return writeFileAtomic(filepath.Join(stateDir, macFile), []byte(mac.String()+"\n"))
}

// newMAC returns a random locally administered unicast MAC, as the kernel
// would give a new VXLAN device, but chosen by us so it can be recorded
// before the device exists.
func newMAC() (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return nil, fmt.Errorf("make a VTEP MAC: %w", err)
	}
	mac[0] = mac[0]&^1 | 2
	return mac, nil
}

// writeFileAtomic replaces path with data: a crash leaves the old file or
// the new one, never a torn one. It creates the directory (0700) if needed.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir %s: %w", dir, err)
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// removeRecord removes a state file; a missing one is fine.
func removeRecord(stateDir, name string) error {
	if err := os.Remove(filepath.Join(stateDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}
