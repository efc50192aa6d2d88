package dns

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestSettingsComplete(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      Settings
		cidr    string
		want    Settings
		wantErr string
	}{
		{name: "defaults: the 10th address", cidr: "10.96.0.0/12",
			want: Settings{ClusterDNS: netip.MustParseAddr("10.96.0.10"), ClusterDomain: "cluster.local", Port: 53}},
		{name: "another range", cidr: "10.43.0.0/16",
			want: Settings{ClusterDNS: netip.MustParseAddr("10.43.0.10"), ClusterDomain: "cluster.local", Port: 53}},
		{name: "given, domain with a dot and capitals, upstreams normalized", cidr: "10.96.0.0/12",
			in: Settings{ClusterDNS: netip.MustParseAddr("10.96.1.1"), ClusterDomain: "Corp.Example.", Port: 5353,
				Upstreams: []string{"192.0.2.53", "127.0.0.1:5300", "[fd00::53]:53"}},
			want: Settings{ClusterDNS: netip.MustParseAddr("10.96.1.1"), ClusterDomain: "corp.example", Port: 5353,
				Upstreams: []string{"192.0.2.53:53", "127.0.0.1:5300", "[fd00::53]:53"}}},
		{name: "outside the range", cidr: "10.96.0.0/12", in: Settings{ClusterDNS: netip.MustParseAddr("10.0.0.10")},
			wantErr: "--cluster-dns 10.0.0.10: not in the Service range 10.96.0.0/12"},
		{name: "network address", cidr: "10.96.0.0/12", in: Settings{ClusterDNS: netip.MustParseAddr("10.96.0.0")},
			wantErr: "--cluster-dns 10.96.0.0: the network or broadcast address"},
		{name: "broadcast address", cidr: "10.96.0.0/12", in: Settings{ClusterDNS: netip.MustParseAddr("10.111.255.255")},
			wantErr: "the network or broadcast address"},
		{name: "the kubernetes Service's address", cidr: "10.96.0.0/12", in: Settings{ClusterDNS: netip.MustParseAddr("10.96.0.1")},
			wantErr: "--cluster-dns 10.96.0.1: the kubernetes Service's ClusterIP"},
		{name: "range too small for the default", cidr: "10.96.0.0/29", wantErr: "--cluster-dns: service CIDR 10.96.0.0/29 is too small"},
		{name: "bad domain", cidr: "10.96.0.0/12", in: Settings{ClusterDomain: "under_score.local"}, wantErr: `--cluster-domain "under_score.local"`},
		{name: "bad port", cidr: "10.96.0.0/12", in: Settings{Port: 70000}, wantErr: "--cluster-dns-port 70000: must be between 1 and 65535"},
		{name: "upstream host name", cidr: "10.96.0.0/12", in: Settings{Upstreams: []string{"dns.example:53"}},
			wantErr: `--cluster-dns-upstream "dns.example:53": "dns.example" is not an IP address`},
		{name: "upstream bad port", cidr: "10.96.0.0/12", in: Settings{Upstreams: []string{"192.0.2.53:0"}},
			wantErr: `--cluster-dns-upstream "192.0.2.53:0": port "0"`},
		{name: "upstream garbage", cidr: "10.96.0.0/12", in: Settings{Upstreams: []string{"x"}}, wantErr: "want IP or IP:PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.Complete(tc.cidr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ClusterDNS != tc.want.ClusterDNS || got.ClusterDomain != tc.want.ClusterDomain || got.Port != tc.want.Port ||
				!slices.Equal(got.Upstreams, tc.want.Upstreams) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNodeSettingsData(t *testing.T) {
	s, err := Settings{}.Complete("10.96.0.0/12")
	if err != nil {
		t.Fatal(err)
	}
	data := s.Node().Data()
	if data[KeyClusterDNS] != "10.96.0.10" || data[KeyClusterDomain] != "cluster.local" {
		t.Fatalf("data = %v", data)
	}
	back, err := NodeSettingsFromData(data)
	if err != nil || !slices.Equal(back.ClusterDNS, []string{"10.96.0.10"}) || back.ClusterDomain != "cluster.local" {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	for _, tc := range []struct {
		data map[string]string
		want string
	}{
		{map[string]string{KeyClusterDomain: "cluster.local"}, "data.clusterDNS is missing"},
		{map[string]string{KeyClusterDNS: "x", KeyClusterDomain: "cluster.local"}, `data.clusterDNS "x": not an IP address`},
		{map[string]string{KeyClusterDNS: "10.96.0.10"}, `data.clusterDomain ""`},
	} {
		if _, err := NodeSettingsFromData(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NodeSettingsFromData(%v) = %v, want %q", tc.data, err, tc.want)
		}
	}
}

func TestUpstreamsFrom(t *testing.T) {
	conf := []byte("# generated\nsearch example.com\nnameserver 192.0.2.53\nnameserver 192.0.2.2\nnameserver fd00::53\nnameserver bogus\noptions edns0\n")
	got := upstreamsFrom(conf, netip.MustParseAddrPort("192.0.2.2:53"))
	if want := []string{"192.0.2.53:53", "[fd00::53]:53"}; !slices.Equal(got, want) {
		t.Errorf("upstreams = %q, want %q (our own address left out)", got, want)
	}
}
