package config

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

// inet_aton(3) forms, as glibc documents them.
func TestParseInetAton(t *testing.T) {
	ok := map[string]string{
		"1.2.3.4":         "1.2.3.4",
		"10.1":            "10.0.0.1",
		"10.1.2":          "10.1.0.2",
		"1.65536":         "1.1.0.0",
		"0x7f.1":          "127.0.0.1",
		"017.0.0.1":       "15.0.0.1",
		"4294967295":      "255.255.255.255",
		"0":               "0.0.0.0",
		"255.255.255.0":   "255.255.255.0",
		"0xff.0xff.0.0x0": "255.255.0.0",
	}
	for in, want := range ok {
		got, valid := parseInetAton(in)
		if assert.True(t, valid, in) {
			assert.Equal(t, netip.MustParseAddr(want), got, in)
		}
	}
	for _, in := range []string{"", "256.1.1.1", "1.2.3.4.5", "1..2", "08.0.0.1", "1.2.3.256", "1.16777216",
		"4294967296", "-1", "+1.2.3.4", "1.2.3.4 ", "a.b.c.d", "1.2.3.4:80", "::1"} {
		_, valid := parseInetAton(in)
		assert.False(t, valid, in)
	}
}

func TestNames(t *testing.T) {
	n := testNames()
	a, ok := n.LookupHost("rs1")
	assert.True(t, ok)
	assert.Equal(t, netip.MustParseAddr("192.168.10.1"), a)
	a, ok = n.LookupHost("LOCALHOST")
	assert.True(t, ok, "host names are case-insensitive")
	assert.Equal(t, netip.MustParseAddr("127.0.0.1"), a, "the IPv4 entry, not ::1")
	a, ok = n.LookupHost6("localhost")
	assert.True(t, ok)
	assert.Equal(t, netip.MustParseAddr("::1"), a)
	_, ok = n.LookupHost("v6host")
	assert.False(t, ok, "no IPv4 address for an IPv6-only name")
	_, ok = n.LookupHost("rs2.example.com#")
	assert.False(t, ok)

	h, ok := n.HostName(netip.MustParseAddr("192.168.10.2"))
	assert.True(t, ok)
	assert.Equal(t, "rs2.example.com", h, "canonical name")
	_, ok = n.HostName(netip.MustParseAddr("192.168.10.3"))
	assert.False(t, ok)

	p, ok := n.LookupPort("www", ProtoTCP)
	assert.True(t, ok)
	assert.Equal(t, uint16(80), p, "aliases count")
	_, ok = n.LookupPort("http", ProtoUDP)
	assert.False(t, ok, "services are per protocol")
	p, ok = n.LookupPort("syslog", ProtoUDP)
	assert.True(t, ok)
	assert.Equal(t, uint16(514), p)

	s, ok := n.PortName(8080, ProtoTCP)
	assert.True(t, ok)
	assert.Equal(t, "http-alt", s)
	s, ok = n.PortName(8080, ProtoFwmark)
	assert.True(t, ok, "fwmark services name ports as tcp")
	assert.Equal(t, "http-alt", s)
	_, ok = n.PortName(514, ProtoTCP)
	assert.False(t, ok)

	var none *Names
	_, ok = none.LookupHost("localhost")
	assert.False(t, ok, "a nil Names knows nothing")
	_, ok = (&Names{}).PortName(80, ProtoTCP)
	assert.False(t, ok, "the zero Names knows nothing")
}

func TestFormatAddrPort(t *testing.T) {
	n := testNames()
	v4 := netip.MustParseAddr("207.175.44.110")
	v6 := netip.MustParseAddr("2001:db8::1")
	assert.Equal(t, "207.175.44.110:80", FormatAddrPort(v4, 80, ProtoTCP, nil))
	assert.Equal(t, "www.example.com:http", FormatAddrPort(v4, 80, ProtoTCP, n))
	assert.Equal(t, "www.example.com:80", FormatAddrPort(v4, 80, ProtoUDP, n))
	assert.Equal(t, "[2001:db8::1]:80", FormatAddrPort(v6, 80, ProtoTCP, nil))
	assert.Equal(t, "[v6host]:http", FormatAddrPort(v6, 80, ProtoTCP, n))
	assert.Equal(t, "10.9.9.9:0", FormatAddrPort(netip.MustParseAddr("10.9.9.9"), 0, ProtoTCP, n))
}

func TestSystemNamesReadsOnlyFiles(t *testing.T) {
	// Whatever /etc/hosts holds, a name it lacks is not resolved (no DNS).
	n := SystemNames()
	_, ok := n.LookupHost("lvslab-no-such-host.invalid")
	assert.False(t, ok)
}
