package check

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"lvslab/config/keepalived"
)

// DNS_CHECK as keepalived 2.2.7's check_dns.c does it: one query over a
// connected UDP socket to the real server (type SOA and name "." unless
// given, class IN, recursion desired, a random ID); the check succeeds on
// the first reply with that ID and the QR bit whose RCODE is 0, fails on a
// reply with another RCODE or on the timeout. Replies with another ID or
// without QR are passed over, as keepalived keeps reading.

// dnsTypes are the types keepalived knows (DNS_TYPE[]).
var dnsTypes = map[string]uint16{"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}

// dnsQuery builds the query keepalived's dns_make_query writes.
func dnsQuery(id uint16, qtype uint16, name string) ([]byte, error) {
	q := make([]byte, 12, 12+len(name)+6)
	binary.BigEndian.PutUint16(q[0:], id)
	binary.BigEndian.PutUint16(q[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(q[4:], 1)      // QDCOUNT
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" {
			continue
		}
		if len(label) > 63 {
			return nil, fmt.Errorf("DNS_CHECK name %q: label %q longer than 63 bytes", name, label)
		}
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	q = append(q, 0)
	q = binary.BigEndian.AppendUint16(q, qtype)
	q = binary.BigEndian.AppendUint16(q, 1) // IN
	return q, nil
}

// DNSProbe is DNS_CHECK.
func DNSProbe(c *keepalived.Checker, to netip.AddrPort) (Probe, error) {
	spec := c.DNS
	if spec == nil {
		spec = &keepalived.DNSCheck{Type: "SOA", Name: "."}
	}
	qtype, ok := dnsTypes[strings.ToUpper(spec.Type)]
	if !ok {
		qtype = dnsTypes["SOA"] // keepalived: "Unknown DNS check type ... - defaulting to SOA"
	}
	if _, err := dnsQuery(0, qtype, spec.Name); err != nil {
		return nil, err
	}
	rs := fmt.Sprintf("[%s]:%d", to.Addr(), to.Port())
	return func(ctx context.Context) Outcome {
		var idb [2]byte
		_, _ = rand.Read(idb[:])
		id := binary.BigEndian.Uint16(idb[:])
		q, _ := dnsQuery(id, qtype, spec.Name)
		d := net.Dialer{}
		if c.BindTo.IsValid() {
			d.LocalAddr = &net.UDPAddr{IP: c.BindTo.AsSlice()}
		}
		conn, err := d.DialContext(ctx, "udp", to.String())
		if err != nil {
			return Outcome{Err: dnsLog(fmt.Sprintf("DNS_CHECK (%s) connection error.", rs))}
		}
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		if _, err := conn.Write(q); err != nil {
			return Outcome{Err: dnsLog(fmt.Sprintf("DNS_CHECK (%s) failed to write socket.", rs))}
		}
		buf := make([]byte, 1024)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return Outcome{Err: dnsLog(fmt.Sprintf("DNS_CHECK (%s) read timeout from socket.", rs))}
				}
				return Outcome{Err: dnsLog(fmt.Sprintf("DNS_CHECK (%s) failed to read socket. %v.", rs, err))}
			}
			if n < 12 || binary.BigEndian.Uint16(buf) != id {
				continue
			}
			flags := binary.BigEndian.Uint16(buf[2:])
			if flags&0x8000 == 0 { // not a response
				continue
			}
			if rcode := flags & 0xf; rcode != 0 {
				// keepalived's text, its spelling included.
				return Outcome{Err: dnsLog(fmt.Sprintf("DNS_CHECK (%s) error occurread. (rcode = %d)", rs, rcode))}
			}
			return Outcome{OK: true}
		}
	}, nil
}

// dnsLog is an error whose text is keepalived's log line, final full stop
// included, so operators' greps match.
type dnsLog string

func (e dnsLog) Error() string { return string(e) }
