package clusternetwork

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*Settings)
		wantErr []string // substrings; none means valid
	}{
		{name: "defaults", change: func(*Settings) {}},
		{name: "host-gw", change: func(s *Settings) { s.Backend = BackendHostGW }},
		{name: "none", change: func(s *Settings) { s.Backend = BackendNone }},
		{name: "one node range", change: func(s *Settings) { s.ClusterCIDR, s.NodeCIDRMaskSize = "10.42.0.0/24", 24 }},
		{name: "smallest node range", change: func(s *Settings) { s.NodeCIDRMaskSize = 30 }},
		{name: "malformed cluster", change: func(s *Settings) { s.ClusterCIDR = "10.42.0.0/33" }, wantErr: []string{"--cluster-cidr", "10.42.0.0/33", "not a CIDR"}},
		{name: "no prefix", change: func(s *Settings) { s.ClusterCIDR = "10.42.0.0" }, wantErr: []string{"--cluster-cidr", "not a CIDR"}},
		{name: "ipv6 cluster", change: func(s *Settings) { s.ClusterCIDR = "fd00:42::/56" }, wantErr: []string{"--cluster-cidr", "not IPv4"}},
		{name: "host bits", change: func(s *Settings) { s.ClusterCIDR = "10.42.0.1/16" }, wantErr: []string{"--cluster-cidr", "did you mean 10.42.0.0/16"}},
		{name: "mask below cluster prefix", change: func(s *Settings) { s.NodeCIDRMaskSize = 15 }, wantErr: []string{"--node-cidr-mask-size 15", "/16"}},
		{name: "mask leaves no room", change: func(s *Settings) { s.NodeCIDRMaskSize = 31 }, wantErr: []string{"--node-cidr-mask-size 31", "no room for pods"}},
		{name: "malformed service", change: func(s *Settings) { s.ServiceCIDR = "bogus" }, wantErr: []string{"--service-cidr", "not a CIDR"}},
		{name: "ipv6 service", change: func(s *Settings) { s.ServiceCIDR = "fd00::/108" }, wantErr: []string{"--service-cidr", "not IPv4"}},
		{name: "service too large", change: func(s *Settings) { s.ServiceCIDR = "10.0.0.0/7" }, wantErr: []string{"--service-cidr", "between /8 and /30"}},
		{name: "service inside cluster", change: func(s *Settings) { s.ServiceCIDR = "10.42.128.0/20" }, wantErr: []string{"--service-cidr 10.42.128.0/20 overlaps --cluster-cidr 10.42.0.0/16"}},
		{name: "cluster inside service", change: func(s *Settings) { s.ClusterCIDR = "10.100.0.0/16" }, wantErr: []string{"overlaps --cluster-cidr 10.100.0.0/16"}},
		{name: "unknown backend", change: func(s *Settings) { s.Backend = "udp" }, wantErr: []string{"--network-backend \"udp\"", "vxlan, host-gw or none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Defaults()
			tc.change(&s)
			err := s.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error with %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestDataRoundTrip(t *testing.T) {
	s := Settings{ClusterCIDR: "10.50.0.0/16", NodeCIDRMaskSize: 26, ServiceCIDR: "10.51.0.0/16", Backend: BackendHostGW}
	got, err := FromData(s.Data())
	if err != nil {
		t.Fatal(err)
	}
	if got != s {
		t.Errorf("FromData(Data()) = %+v, want %+v", got, s)
	}
	data := s.Data()
	delete(data, KeyBackend)
	if _, err := FromData(data); err == nil || !strings.Contains(err.Error(), "data.backend is missing") {
		t.Errorf("FromData without backend = %v, want data.backend is missing", err)
	}
	data = s.Data()
	data[KeyNodeCIDRMaskSize] = "x"
	if _, err := FromData(data); err == nil || !strings.Contains(err.Error(), "data.nodeCIDRMaskSize \"x\" is not a number") {
		t.Errorf("FromData with a bad mask = %v", err)
	}
}

func TestCheckUnchanged(t *testing.T) {
	stored := Defaults()
	for _, tc := range []struct {
		change func(*Settings)
		want   string
	}{
		{func(s *Settings) { s.ClusterCIDR = "10.43.0.0/16" }, "--cluster-cidr 10.43.0.0/16: the cluster already uses 10.42.0.0/16"},
		{func(s *Settings) { s.NodeCIDRMaskSize = 25 }, "--node-cidr-mask-size 25: the cluster already uses 24"},
		{func(s *Settings) { s.ServiceCIDR = "10.112.0.0/12" }, "--service-cidr 10.112.0.0/12: the cluster already uses 10.96.0.0/12"},
		{func(s *Settings) { s.Backend = BackendHostGW }, "--network-backend host-gw: the cluster already uses vxlan"},
	} {
		s := Defaults()
		tc.change(&s)
		err := s.CheckUnchanged(stored)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "strand") {
			t.Errorf("CheckUnchanged = %v, want %q and why", err, tc.want)
		}
	}
	if err := Defaults().CheckUnchanged(stored); err != nil {
		t.Errorf("CheckUnchanged(same) = %v", err)
	}
}

func TestEnsurePublishesThenRefusesAChange(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	s := Defaults()
	if err := Ensure(ctx, client, s, nil); err != nil {
		t.Fatalf("first Ensure: %v", err)
	}
	cm, err := client.CoreV1().ConfigMaps(ConfigMapNamespace).Get(ctx, ConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"clusterCIDR": "10.42.0.0/16", "nodeCIDRMaskSize": "24", "serviceCIDR": "10.96.0.0/12", "backend": "vxlan"}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("data.%s = %q, want %q", k, cm.Data[k], v)
		}
	}
	if err := Ensure(ctx, client, s, nil); err != nil {
		t.Errorf("Ensure with the same settings: %v", err)
	}
	changed := s
	changed.ClusterCIDR = "10.43.0.0/16"
	if err := Ensure(ctx, client, changed, nil); err == nil || !strings.Contains(err.Error(), "--cluster-cidr") {
		t.Errorf("Ensure with another cluster range = %v, want a refusal naming --cluster-cidr", err)
	}
	cm, _ = client.CoreV1().ConfigMaps(ConfigMapNamespace).Get(ctx, ConfigMapName, metav1.GetOptions{})
	if cm.Data[KeyClusterCIDR] != "10.42.0.0/16" {
		t.Errorf("a refused Ensure changed the ConfigMap: %v", cm.Data)
	}
}

func TestReadWaitsForTheConfigMap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := fake.NewClientset()
	type result struct {
		s   Settings
		err error
	}
	got := make(chan result, 1)
	waiting := &signalWriter{c: make(chan struct{})}
	go func() {
		s, _, err := Read(ctx, client, slog.New(slog.NewTextHandler(waiting, nil)))
		got <- result{s, err}
	}()
	select { // Read logs that it waits before it watches
	case <-waiting.c:
	case <-ctx.Done():
		t.Fatal("Read did not say it waits for the ConfigMap")
	}
	want := Settings{ClusterCIDR: "10.60.0.0/16", NodeCIDRMaskSize: 24, ServiceCIDR: "10.96.0.0/12", Backend: BackendNone}
	if err := Ensure(ctx, client, want, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil || r.s != want {
			t.Errorf("Read = %+v, %v; want %+v", r.s, r.err, want)
		}
	case <-ctx.Done():
		t.Fatal("Read did not see the ConfigMap created after it started")
	}
}

// signalWriter closes c on the first write.
type signalWriter struct {
	once sync.Once
	c    chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.c) })
	return len(p), nil
}

func TestReadEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Read(ctx, fake.NewClientset(), slog.New(slog.DiscardHandler)); err == nil {
		t.Error("Read with a cancelled context and no ConfigMap returned no error")
	}
}

// The keys other parts publish beside the network settings (the cluster
// DNS) are written at the first start and follow later starts, while the
// network settings stay fixed; nodes read them back with Read.
func TestEnsureCarriesExtraKeys(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	s := Defaults()
	if err := Ensure(ctx, client, s, map[string]string{"clusterDNS": "10.96.0.10", "clusterDomain": "cluster.local"}); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx, client, s, map[string]string{"clusterDNS": "10.96.0.53"}); err != nil {
		t.Fatalf("a changed extra key was refused: %v", err)
	}
	got, data, err := Read(ctx, client, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got != s {
		t.Errorf("settings %+v, want %+v", got, s)
	}
	if data["clusterDNS"] != "10.96.0.53" || data["clusterDomain"] != "cluster.local" {
		t.Errorf("extra keys %v, want the later clusterDNS and the earlier clusterDomain", data)
	}
}
