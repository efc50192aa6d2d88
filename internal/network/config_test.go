package network

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

func baseConfig(t *testing.T) Config {
	dir := t.TempDir()
	return Config{
		ConfDir:     filepath.Join(dir, "net.d"),
		CacheDir:    filepath.Join(dir, "cache"),
		IPAMDataDir: filepath.Join(dir, "networks"),
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // substring; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"pod cidr garbage", func(c *Config) { c.PodCIDR = "10.88.0.0" }, `PodCIDR "10.88.0.0" is not a valid CIDR`},
		{"pod cidr bad prefix", func(c *Config) { c.PodCIDR = "10.88.0.0/33" }, `PodCIDR "10.88.0.0/33" is not a valid CIDR`},
		{"pod cidr host bits", func(c *Config) { c.PodCIDR = "10.88.0.5/16" }, `PodCIDR "10.88.0.5/16" has host bits set (did you mean "10.88.0.0/16"?)`},
		{"pod cidr ipv6", func(c *Config) { c.PodCIDR = "fd00::/64" }, `PodCIDR "fd00::/64" is not IPv4`},
		{"pod cidr too small", func(c *Config) { c.PodCIDR = "10.88.0.0/31" }, `PodCIDR "10.88.0.0/31" is too small`},
		{"cluster contains pod", func(c *Config) { c.PodCIDR = "10.88.1.0/24"; c.ClusterCIDR = "10.88.0.0/16" }, ""},
		{"cluster misses pod", func(c *Config) { c.ClusterCIDR = "10.99.0.0/16" }, `ClusterCIDR "10.99.0.0/16" does not contain PodCIDR "10.88.0.0/16"`},
		{"cluster smaller than pod", func(c *Config) { c.ClusterCIDR = "10.88.0.0/24" }, "does not contain"},
		{"cluster invalid", func(c *Config) { c.ClusterCIDR = "nope" }, `ClusterCIDR "nope" is not a valid CIDR`},
		{"long bridge", func(c *Config) { c.BridgeName = "abcdefghijklmnop" }, "longer than 15"},
		{"mtu negative", func(c *Config) { c.MTU = -1 }, "MTU -1"},
		{"mtu small", func(c *Config) { c.MTU = 100 }, "MTU 100"},
		{"mtu ok", func(c *Config) { c.MTU = 1400 }, ""},
		{"no conf dir", func(c *Config) { c.ConfDir = "" }, "ConfDir is required"},
		{"no cache dir", func(c *Config) { c.CacheDir = "" }, "CacheDir is required"},
		{"no ipam dir", func(c *Config) { c.IPAMDataDir = "" }, "IPAMDataDir is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(t)
			tt.mutate(&cfg)
			got, err := cfg.withDefaults()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.BridgeName == "" || got.PodCIDR == "" || len(got.BinDirs) == 0 {
					t.Errorf("defaults not filled: %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			// New reports the same error and writes nothing.
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v", err)
			}
			if cfg.ConfDir != "" {
				if _, err := os.Stat(cfg.ConfDir); !os.IsNotExist(err) {
					t.Errorf("New wrote %s on invalid config", cfg.ConfDir)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := baseConfig(t).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BridgeName != "peapod0" || cfg.PodCIDR != "10.88.0.0/16" ||
		!reflect.DeepEqual(cfg.BinDirs, []string{"/usr/lib/cni", "/opt/cni/bin"}) {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestDefaultConfList(t *testing.T) {
	for _, cluster := range []string{"", "10.0.0.0/8"} {
		cfg := baseConfig(t)
		cfg.PodCIDR = "10.1.2.0/24"
		cfg.ClusterCIDR = cluster
		cfg.MTU = 1400
		cfg, err := cfg.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		b, err := defaultConfList(cfg, true)
		if err != nil {
			t.Fatal(err)
		}
		list, err := libcni.NetworkConfFromBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		if list.Name != "peapod" || list.CNIVersion != "1.0.0" || len(list.Plugins) != 2 {
			t.Fatalf("list %+v", list)
		}
		var bridge struct {
			Type, Bridge               string
			IsGateway, IPMasq, Hairpin bool
			HairpinMode                bool `json:"hairpinMode"`
			MTU                        int
			IPAM                       struct {
				Type    string
				Ranges  [][]map[string]string
				Routes  []map[string]string
				DataDir string `json:"dataDir"`
			}
		}
		if err := json.Unmarshal(list.Plugins[0].Bytes, &bridge); err != nil {
			t.Fatal(err)
		}
		if bridge.Type != "bridge" || bridge.Bridge != "peapod0" || !bridge.IsGateway || !bridge.HairpinMode ||
			bridge.IPMasq != (cluster == "") || bridge.MTU != 1400 ||
			bridge.IPAM.Type != "host-local" || bridge.IPAM.Ranges[0][0]["subnet"] != "10.1.2.0/24" ||
			bridge.IPAM.Routes[0]["dst"] != "0.0.0.0/0" || bridge.IPAM.DataDir != cfg.IPAMDataDir {
			t.Errorf("bridge plugin: %s", list.Plugins[0].Bytes)
		}
		pm := list.Plugins[1].Network
		if pm.Type != "portmap" || !pm.Capabilities["portMappings"] || !strings.Contains(string(list.Plugins[1].Bytes), `"snat":true`) {
			t.Errorf("portmap plugin: %s", list.Plugins[1].Bytes)
		}
	}
}

func TestChooseConfFile(t *testing.T) {
	def := "/d/10-peapod.conflist"
	tests := []struct {
		files   []string
		want    string
		wantDef bool
	}{
		{nil, def, true},
		{[]string{def}, def, true},
		{[]string{"/d/05-a.conf", def}, "/d/05-a.conf", false},
		{[]string{def, "/d/99-z.conflist"}, "/d/99-z.conflist", false},
		{[]string{"/d/a.conflist", "/d/b.conflist"}, "/d/a.conflist", false},
	}
	for _, tt := range tests {
		got, isDef := chooseConfFile(tt.files, def)
		if got != tt.want || isDef != tt.wantDef {
			t.Errorf("chooseConfFile(%v) = %s, %v; want %s, %v", tt.files, got, isDef, tt.want, tt.wantDef)
		}
	}
}

func TestNewWritesDefault(t *testing.T) {
	cfg := baseConfig(t)
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.ConfDir, DefaultConfFile)
	if m.ConfigFile() != path || m.NetworkName() != "peapod" {
		t.Fatalf("ConfigFile %s, network %s", m.ConfigFile(), m.NetworkName())
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	// A changed PodCIDR rewrites peapod's own default; no temp files remain.
	cfg.PodCIDR = "10.77.0.0/16"
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "10.77.0.0/16") {
		t.Errorf("default not rewritten: %s", b)
	}
	ents, _ := os.ReadDir(cfg.ConfDir)
	if len(ents) != 1 {
		t.Errorf("conf dir holds %v", ents)
	}
	// A single-plugin .conf is used (wrapped into a list) and wins.
	conf := `{"cniVersion":"1.0.0","name":"single","type":"ptp","ipam":{"type":"host-local","subnet":"10.5.0.0/24"}}`
	if err := os.WriteFile(filepath.Join(cfg.ConfDir, "20-single.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.NetworkName() != "single" || len(m.list.Plugins) != 1 || m.list.Plugins[0].Network.Type != "ptp" {
		t.Errorf("single conf: %s %+v", m.NetworkName(), m.list)
	}
	// A broken user config is an error naming the file.
	if err := os.WriteFile(filepath.Join(cfg.ConfDir, "01-bad.conflist"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "01-bad.conflist") {
		t.Errorf("New with a broken conflist: %v", err)
	}
}

func TestPortMappingsArg(t *testing.T) {
	got, err := portMappingsArg([]PortMapping{
		{HostPort: 8080, ContainerPort: 80},
		{HostPort: 53, ContainerPort: 53, Protocol: "UDP", HostIP: "127.0.0.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []portMapping{{8080, 80, "tcp", ""}, {53, 53, "udp", "127.0.0.1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
	b, _ := json.Marshal(got[1])
	if string(b) != `{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}` {
		t.Errorf("json %s", b)
	}
	for _, bad := range []PortMapping{{HostPort: 0, ContainerPort: 80}, {HostPort: 1, ContainerPort: 70000}, {HostPort: 1, ContainerPort: 1, Protocol: "icmp"}} {
		if _, err := portMappingsArg([]PortMapping{bad}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestResultFrom(t *testing.T) {
	idx := func(i int) *int { return &i }
	cidr := func(s string) net.IPNet { ip, n, _ := net.ParseCIDR(s); n.IP = ip; return *n }
	r := &types100.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*types100.Interface{
			{Name: "peapod0", Mac: "aa:aa:aa:aa:aa:aa"},
			{Name: "veth1234", Mac: "bb:bb:bb:bb:bb:bb"},
			{Name: "eth0", Mac: "cc:cc:cc:cc:cc:cc", Sandbox: "/run/netns/x"},
		},
		IPs: []*types100.IPConfig{{Interface: idx(2), Address: cidr("10.88.0.5/16"), Gateway: net.ParseIP("10.88.0.1")}},
	}
	got, err := resultFrom(r, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	want := &Result{Interface: "eth0", IPs: []string{"10.88.0.5/16"}, Gateway: "10.88.0.1", HostVeth: "veth1234", Mac: "cc:cc:cc:cc:cc:cc"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := resultFrom(&types100.Result{CNIVersion: "1.0.0"}, "eth0"); err == nil {
		t.Error("result without IPs accepted")
	}
	if _, err := resultFrom(nil, "eth0"); err == nil {
		t.Error("nil result accepted")
	}
}

func TestSplitRuleAndBridgeMasqueradeRules(t *testing.T) {
	save := `-P POSTROUTING ACCEPT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s 10.1.1.3/32 -m comment --comment "name: \"peapod\" id: \"b-1\"" -j CNI-e4d542f851c55110f643c0df
-A POSTROUTING -s 10.1.1.4/32 -m comment --comment "name: \"peapod\" id: \"b-12\"" -j CNI-aaaa
`
	if got := splitRule(`-A X -m comment --comment "a \"b\" c" -j Y`); !reflect.DeepEqual(got,
		[]string{"-A", "X", "-m", "comment", "--comment", `a "b" c`, "-j", "Y"}) {
		t.Errorf("splitRule = %q", got)
	}
	if got := splitRule(`--comment ""`); !reflect.DeepEqual(got, []string{"--comment", ""}) {
		t.Errorf("splitRule empty quoted = %q", got)
	}
	rules, chains := bridgeMasqueradeRules(save, `name: "peapod" id: "b-1"`)
	if len(rules) != 1 || rules[0][3] != "10.1.1.3/32" || !reflect.DeepEqual(chains, []string{"CNI-e4d542f851c55110f643c0df"}) {
		t.Errorf("rules %q chains %q", rules, chains)
	}
	if rules, _ := bridgeMasqueradeRules(save, `name: "peapod" id: "nope"`); len(rules) != 0 {
		t.Errorf("matched %q", rules)
	}
}

func TestClusterMasqueradeRules(t *testing.T) {
	got := clusterMasqueradeRules("10.0.0.0/8")
	chain := masqChain("10.0.0.0/8")
	if !strings.HasPrefix(chain, masqChainPrefix) || len(chain) > 28 || chain == masqChain("10.1.0.0/16") {
		t.Errorf("chain name %q: want a per-network name under %s, at most 28 characters", chain, masqChainPrefix)
	}
	for _, want := range []string{":" + chain + " - [0:0]", "-A " + chain + " -d 10.0.0.0/8 ", "-j RETURN", "-A " + chain + " -j MASQUERADE", "COMMIT"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

func TestUsesIPMasq(t *testing.T) {
	tests := []struct {
		conf string
		want bool
	}{
		{`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","ipMasq":true},{"type":"portmap"}]}`, true},
		{`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","ipMasq":false},{"type":"portmap"}]}`, false},
		{`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}`, false},
		{`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ptp","ipMasq":true}]}`, true},
		{`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","ipMasq":"yes"}]}`, true}, // unparsable: clean up to be safe
	}
	for _, tt := range tests {
		l, err := libcni.NetworkConfFromBytes([]byte(tt.conf))
		if err != nil {
			t.Fatal(err)
		}
		if got := usesIPMasq(l); got != tt.want {
			t.Errorf("usesIPMasq(%s) = %v, want %v", tt.conf, got, tt.want)
		}
	}
}

// TestDefaultListWithoutPortmap: New derives the list used for pods
// without host ports from the default: same name and bridge, no portmap.
// A user config gets no such list.
func TestDefaultListWithoutPortmap(t *testing.T) {
	cfg := baseConfig(t)
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.noPorts == nil || m.noPorts.Name != m.list.Name || len(m.noPorts.Plugins) != 1 ||
		string(m.noPorts.Plugins[0].Bytes) != string(m.list.Plugins[0].Bytes) {
		t.Fatalf("noPorts %+v, list %+v", m.noPorts, m.list)
	}
	if m.listFor(false) != m.noPorts || m.listFor(true) != m.list {
		t.Error("listFor picks the wrong list")
	}
	conf := `{"cniVersion":"1.0.0","name":"u","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}`
	if err := os.WriteFile(filepath.Join(cfg.ConfDir, "05-u.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if m.noPorts != nil || m.listFor(false) != m.list {
		t.Errorf("user config trimmed: %+v", m.noPorts)
	}
}
