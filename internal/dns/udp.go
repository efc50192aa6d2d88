package dns

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"

	mdns "github.com/miekg/dns"
)

// serveUDP answers queries on pc with one goroutine per CPU, each reading
// the socket in turn and answering inline. miekg/dns's own UDP server has
// one reader that starts a goroutine per packet, whose stack then grows on
// the way through the handler; for the cluster's one-packet answers that
// hand-off and growth cost more than the answer (issue 12 asks for 20,000
// queries a second from a pod on a 2-core node). Messages are still read
// and written with miekg/dns, and checked as its server checks them
// (mdns.DefaultMsgAcceptFunc). It returns when pc is closed.
func serveUDP(h mdns.Handler, pc net.PacketConn) error {
	udp, ok := pc.(*net.UDPConn)
	if !ok {
		return errors.New("DNS server: UDP needs a *net.UDPConn")
	}
	workers := max(2, runtime.NumCPU())
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- udpWorker(h, udp)
		}()
	}
	wg.Wait()
	close(errc)
	err := <-errc
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func udpWorker(h mdns.Handler, conn *net.UDPConn) error {
	buf := make([]byte, mdns.MaxMsgSize)
	w := &udpWriter{conn: conn}
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			continue // a transient error (ICMP-reported, ENOBUFS): the next packet
		}
		if n < 12 {
			continue
		}
		var dh mdns.Header
		dh.Id = uint16(buf[0])<<8 | uint16(buf[1])
		dh.Bits = uint16(buf[2])<<8 | uint16(buf[3])
		dh.Qdcount = uint16(buf[4])<<8 | uint16(buf[5])
		dh.Ancount = uint16(buf[6])<<8 | uint16(buf[7])
		dh.Nscount = uint16(buf[8])<<8 | uint16(buf[9])
		dh.Arcount = uint16(buf[10])<<8 | uint16(buf[11])
		w.to = from
		switch action := mdns.DefaultMsgAcceptFunc(dh); action {
		case mdns.MsgIgnore:
			continue
		case mdns.MsgReject, mdns.MsgRejectNotImplemented:
			rcode := mdns.RcodeFormatError
			if action == mdns.MsgRejectNotImplemented {
				rcode = mdns.RcodeNotImplemented
			}
			m := new(mdns.Msg)
			m.Id, m.Response, m.Opcode, m.Rcode = dh.Id, true, int(dh.Bits>>11)&0xF, rcode
			_ = w.WriteMsg(m)
			continue
		}
		req := new(mdns.Msg)
		if err := req.Unpack(buf[:n]); err != nil {
			m := new(mdns.Msg)
			m.Id, m.Response, m.Rcode = dh.Id, true, mdns.RcodeFormatError
			_ = w.WriteMsg(m)
			continue
		}
		h.ServeDNS(w, req)
	}
}

// udpWriter is the mdns.ResponseWriter of one UDP query; a worker reuses
// it for each query it reads.
type udpWriter struct {
	conn *net.UDPConn
	to   netip.AddrPort
}

var _ mdns.ResponseWriter = (*udpWriter)(nil)

func (w *udpWriter) LocalAddr() net.Addr  { return w.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.to) }
func (w *udpWriter) WriteMsg(m *mdns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
func (w *udpWriter) Write(b []byte) (int, error) { return w.conn.WriteToUDPAddrPort(b, w.to) }
func (w *udpWriter) Close() error                { return nil }
func (w *udpWriter) TsigStatus() error           { return nil }
func (w *udpWriter) TsigTimersOnly(bool)         {}
func (w *udpWriter) Hijack()                     {}
