package leakcheck

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// nftTableEntries lists the nftables tables named in names, as "<family>
// <name>" (from `nft list tables`). No nft binary means no tables to see.
func nftTableEntries(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, nil
	}
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return nil, fmt.Errorf("nft list tables: %w", err)
	}
	return parseNFTTables(string(out), names), nil
}

// parseNFTTables picks the tables named in names from `nft list tables`
// output ("table <family> <name>" lines). Pure.
func parseNFTTables(out string, names []string) []string {
	var tables []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "table" && slices.Contains(names, f[2]) {
			tables = append(tables, f[1]+" "+f[2])
		}
	}
	return tables
}

// conntrackEntries lists the IPv4 conntrack flows whose mark has a bit of
// mark set (none when mark is 0).
func conntrackEntries(mark uint32) ([]string, error) {
	if mark == 0 {
		return nil, nil
	}
	flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 10; try++ {
		time.Sleep(10 * time.Millisecond)
		flows, err = netlink.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	}
	if err != nil {
		return nil, fmt.Errorf("list conntrack flows: %w", err)
	}
	var out []string
	for _, f := range flows {
		if f.Mark&mark == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("proto %d %s:%d -> %s:%d mark %#x", f.Forward.Protocol,
			f.Forward.SrcIP, f.Forward.SrcPort, f.Forward.DstIP, f.Forward.DstPort, f.Mark))
	}
	return out, nil
}
