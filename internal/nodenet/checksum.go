package nodenet

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The VXLAN checksum-offload workaround. flannel documents `ethtool -K
// flannel.1 tx-checksum-ip-generic off` for VXLAN packets whose UDP
// checksum arrives corrupted (flannel #1279: NAT on the path; calico
// #3145: kernels before 5.7 with MASQUERADE --random-fully). peapod applies
// it per Config.ChecksumOffload: on kernels before 5.7 by default, always
// with "off". The setting is the legacy ETHTOOL_STXCSUM, which clears the
// device's whole TX checksum feature set (tx-checksum-ip-generic on a
// VXLAN device), as `ethtool -K dev tx off` does.

// checksumFixedIn is the first kernel release whose NAT no longer
// corrupts VXLAN's zero UDP checksum.
var checksumFixedIn = [2]int{5, 7}

// disableChecksumOffload decides the workaround for a mode and a kernel
// release string (uname -r). It is pure.
func disableChecksumOffload(mode ChecksumOffload, release string) bool {
	switch mode {
	case ChecksumOffloadOff:
		return true
	case ChecksumOffloadOn:
		return false
	}
	major, minor, ok := kernelVersion(release)
	if !ok {
		return false // unknown: keep the kernel's default
	}
	return major < checksumFixedIn[0] || (major == checksumFixedIn[0] && minor < checksumFixedIn[1])
}

// kernelVersion parses "6.1.0-18-amd64" into 6, 1.
func kernelVersion(release string) (major, minor int, ok bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	digits := parts[1]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i]
	}
	minor, err2 := strconv.Atoi(digits)
	return major, minor, err1 == nil && err2 == nil
}

func kernelRelease() string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return ""
	}
	return unix.ByteSliceToString(uts.Release[:])
}

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd, data uint32
}

// ifreqData is struct ifreq with ifr_data.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// txChecksum reads (set == nil) or writes the TX checksum offload of
// device, in the calling thread's network namespace (the socket's
// namespace decides which device the name means).
func txChecksum(device string, set *bool) (bool, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	call := func(cmd, data uint32) (uint32, error) {
		v := ethtoolValue{cmd: cmd, data: data}
		var ifr ifreqData
		copy(ifr.name[:], device)
		ifr.data = unsafe.Pointer(&v)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
		runtime.KeepAlive(&v)
		if errno != 0 {
			return 0, errno
		}
		return v.data, nil
	}
	if set != nil {
		var data uint32
		if *set {
			data = 1
		}
		if _, err := call(unix.ETHTOOL_STXCSUM, data); err != nil {
			return false, fmt.Errorf("ethtool set tx checksum of %s: %w", device, err)
		}
	}
	got, err := call(unix.ETHTOOL_GTXCSUM, 0)
	if err != nil {
		return false, fmt.Errorf("ethtool get tx checksum of %s: %w", device, err)
	}
	return got != 0, nil
}
