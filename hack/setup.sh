#!/usr/bin/env bash
# setup.sh prepares this machine for peapod: it installs the Debian packages
# peapod runs on and, on hosts with hybrid cgroups, gives crun the cgroup v1
# hugetlb hierarchy it needs; it turns on the kernel's favordynmods cgroup
# option for fast cgroup moves. It is idempotent and says what it does.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
	say "peapod manages namespaces, mounts and cgroups: run this as root" >&2
	exit 1
fi

# Go first, before any package is installed: without it nothing can be
# built, and a half-set-up machine helps nobody. The version go.mod asks for
# is the minimum; an older go would try to download a toolchain.
export PATH="$PATH:/usr/local/go/bin"
want=$(awk '$1 == "go" { print $2; exit }' "$(dirname "$0")/../go.mod")
if ! command -v go >/dev/null; then
	say "Go $want or newer is needed and is not on PATH (install it in /usr/local/go from https://go.dev/dl/)" >&2
	exit 1
fi
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]; then
	say "Go $want or newer is needed; $(command -v go) is $have" >&2
	exit 1
fi

# Package -> a file it installs, so an installed package costs no apt call.
declare -A packages=(
	[runc]=/usr/sbin/runc
	[crun]=/usr/bin/crun
	[containernetworking-plugins]=/usr/lib/cni/bridge
	[busybox-static]=/bin/busybox
	[iproute2]=/usr/sbin/ip
	[iptables]=/usr/sbin/iptables
	[nftables]=/usr/sbin/nft
	[musl-tools]=/usr/bin/musl-gcc
	[etcd-server]=/usr/bin/etcd
	[kmod]=/usr/sbin/modprobe
)
# `setup.sh --bench` also installs what `make bench` compares peapod with
# (podman with catatonit, the pause process of its pods, which apt leaves
# out as a recommendation; iperf3) and perf for its CPU profile.
if [ "${1:-}" = "--bench" ]; then
	packages=(
		[podman]=/usr/bin/podman
		[catatonit]=/usr/bin/catatonit
		[iperf3]=/usr/bin/iperf3
		[linux-perf]=/usr/bin/perf
	)
fi
missing=()
for pkg in "${!packages[@]}"; do
	[ -e "${packages[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing from Debian: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	say "Debian packages present (${!packages[*]})"
fi

# The kernel pieces pods need; built in on most kernels, modules on others.
for mod in overlay br_netfilter veth bridge vxlan; do
	modprobe -q "$mod" 2>/dev/null || true
done
if ! grep -qw overlay /proc/filesystems; then
	say "the kernel has no overlayfs: container root filesystems need it" >&2
	exit 1
fi

# crun refuses to run on hybrid cgroup hosts (v1 controllers plus a cgroup2
# mount with controllers in it). Binding hugetlb, the only controller left in
# cgroup2, to its own v1 hierarchy empties cgroup2 and makes crun work.
# cgroupfs files report size 0, so the controllers file is read, never
# tested with `test -s` (which is false for every cgroup file).
unified=/sys/fs/cgroup/unified
if grep -q " $unified .* - cgroup2 " /proc/self/mountinfo; then
	controllers=$(cat "$unified/cgroup.controllers")
	if [ -n "$controllers" ] && ! grep -q ' - cgroup cgroup .*hugetlb' /proc/self/mountinfo; then
		if [ "$controllers" = "hugetlb" ]; then
			say "hybrid cgroups with hugetlb in cgroup2: mounting hugetlb as a v1 hierarchy so crun can run"
			mkdir -p /sys/fs/cgroup/hugetlb
			mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
		else
			say "hybrid cgroups with '$controllers' in cgroup2: crun will be unavailable (runc works)"
		fi
	fi
fi
# Moving a process between cgroups makes the kernel wait for an RCU grace
# period (15 ms on this kind of VM) unless a cgroup2 mount has the
# favordynmods option, which keeps the cgroup lock in the mode that suits
# hosts that move processes often. Every pod start moves its container.
for cg2 in $(grep ' - cgroup2 ' /proc/self/mountinfo | awk '{print $5}'); do
	if ! grep " $cg2 " /proc/self/mountinfo | grep -q favordynmods; then
		if mount -o remount,favordynmods "$cg2" 2>/dev/null; then
			say "remounted $cg2 with favordynmods: faster cgroup moves, so faster container starts"
		else
			say "this kernel has no favordynmods for $cg2; container starts wait for RCU"
		fi
	fi
done
say "ready"
