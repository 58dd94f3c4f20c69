package config

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sched"
)

// sampleServices is the configuration behind the sample outputs of
// reference/ipvs.md §6.3.
func sampleServices() []VirtualService {
	vip := addr("207.175.44.110")
	return []VirtualService{
		{Service: Service{Protocol: ProtoTCP, Addr: vip, Port: 80, Scheduler: "wlc", Persistent: true,
			PersistTimeout: 360 * time.Second, Netmask: addr("255.255.255.0")},
			Dests: []Dest{
				{Addr: addr("192.168.10.2"), Port: 80, Forward: ForwardMasq, Weight: 2},
				{Addr: addr("192.168.10.1"), Port: 80, Forward: ForwardMasq, Weight: 1},
			}},
		{Service: Service{Protocol: ProtoTCP, Addr: vip, Port: 8080, Scheduler: "rr"},
			Dests: []Dest{{Addr: addr("172.16.0.2"), Port: 8080, Forward: ForwardRoute, Weight: 1}}},
		{Service: Service{Protocol: ProtoUDP, Addr: vip, Port: 53, Scheduler: "sh", Flags: sched.Flag1 | sched.Flag2},
			Dests: []Dest{{Addr: addr("172.16.0.3"), Port: 53, Forward: ForwardTunnel, Weight: 1}}},
		{Service: Service{Protocol: ProtoUDP, Addr: vip, Port: 514, Scheduler: "rr", OnePacket: true},
			Dests: []Dest{{Addr: addr("172.16.0.2"), Port: 514, Forward: ForwardMasq, Weight: 1}}},
		{Service: Service{Protocol: ProtoFwmark, Fwmark: 1, Scheduler: "wrr"},
			Dests: []Dest{{Addr: addr("192.168.10.5"), Forward: ForwardRoute, Weight: 0}}},
	}
}

// Verbatim from reference/ipvs.md §6.3, "$ ipvsadm -S -n".
const sampleSave = `-A -t 207.175.44.110:80 -s wlc -p 360 -M 255.255.255.0
-a -t 207.175.44.110:80 -r 192.168.10.1:80 -m -w 1
-a -t 207.175.44.110:80 -r 192.168.10.2:80 -m -w 2
-A -t 207.175.44.110:8080 -s rr
-a -t 207.175.44.110:8080 -r 172.16.0.2:8080 -g -w 1
-A -u 207.175.44.110:53 -s sh -b sh-fallback,sh-port
-a -u 207.175.44.110:53 -r 172.16.0.3:53 -i -w 1 --tun-type ipip
-A -u 207.175.44.110:514 -s rr -o
-a -u 207.175.44.110:514 -r 172.16.0.2:514 -m -w 1
-A -f 1 -s wrr
-a -f 1 -r 192.168.10.5:0 -g -w 0
`

func TestFormatSaveSample(t *testing.T) {
	vss := sampleServices()
	// Input order must not matter: -S sorts.
	rand.Shuffle(len(vss), func(i, j int) { vss[i], vss[j] = vss[j], vss[i] })
	assert.Equal(t, sampleSave, FormatSave(vss, nil))

	// And the sample loads back to the same configuration.
	tab, err := Parser{}.LoadRules(strings.NewReader(sampleSave), "sample")
	require.NoError(t, err)
	assert.Equal(t, normalize(sampleServices()), normalize(tab.Services))
}

func TestFormatSaveNames(t *testing.T) {
	got := FormatSave(sampleServices()[:2], testNames())
	assert.Equal(t, `-A -t www.example.com:http -s wlc -p 360 -M 255.255.255.0
-a -t www.example.com:http -r rs1.example.com:http -m -w 1
-a -t www.example.com:http -r rs2.example.com:http -m -w 2
-A -t www.example.com:http-alt -s rr
-a -t www.example.com:http-alt -r 172.16.0.2:http-alt -g -w 1
`, got)
}

// A rule set using every option -S can write: TCP, UDP, SCTP and fwmark
// (IPv4 and IPv6) services, every scheduler, scheduler flags, persistence
// with and without a mask, a persistence engine, one-packet scheduling,
// every forwarding method and tunnel encapsulation, weights and thresholds.
const everyOption = `
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.168.1.1:80 -g -w 1
-a -t 10.0.0.1:80 -r 192.168.1.2:8080 -m -w 5 -x 100 -y 50
-a -t 10.0.0.1:80 -r 192.168.1.3 -i -w 0
-a -t 10.0.0.1:80 -r 192.168.1.4 -i --tun-type gue --tun-port 6080 --tun-csum -w 2
-a -t 10.0.0.1:80 -r 192.168.1.5 -i --tun-type gue --tun-port 6081 --tun-remcsum
-a -t 10.0.0.1:80 -r 192.168.1.6 -i --tun-type gue --tun-port 6082 --tun-nocsum
-a -t 10.0.0.1:80 -r 192.168.1.7 -i --tun-type gre --tun-csum
-a -t 10.0.0.1:80 -r 192.168.1.8 -i --tun-type gre
-a -t 10.0.0.1:80 -r [2001:db8::8]:80 -i
-a -t 10.0.0.1:80 -r 192.168.1.9:9090 --fullnat -w 65535 -x 2147483647
-a -t 10.0.0.1:80 -r 192.168.1.10:80 -m -x 7
-A -t 10.0.0.1:443 -s wrr -p
-a -t 10.0.0.1:443 -r 192.168.1.1 -g -w 3
-A -t 10.0.0.1:0 -s lc -p 600 -M 255.255.0.0
-A -t 10.0.0.2:80 -s wlc -p 1 -M 0.0.0.0 --pe sip
-A -u 10.0.0.1:53 -s lblc
-A -u 10.0.0.1:54 -s lblcr
-A -u 10.0.0.1:55 -s dh
-A -u 10.0.0.1:514 -s sh -b sh-fallback -o
-a -u 10.0.0.1:514 -r 192.168.1.1 -m
-A -u 10.0.0.1:515 -s sh -b sh-port,flag-3
-A -t 10.0.0.3:80 -s mh -b mh-fallback,mh-port
-A -t 10.0.0.3:81 -s wlc -b flag-1,flag-2,flag-3
-A --sctp-service 10.0.0.4:5060 -s sed
-a --sctp-service 10.0.0.4:5060 -r 192.168.1.1:5061 -m
-A -t [2001:db8::1]:80 -s nq -p 300 -M 64
-a -t [2001:db8::1]:80 -r [2001:db8::10]:8080 -m
-a -t [2001:db8::1]:80 -r [2001:db8::11]:8080 -g -w 4
-A -f 1 -s fo
-a -f 1 -r 192.168.1.1:0 -g
-a -f 1 -r 192.168.1.2:443 -m -w 3
-A -f 2 -6 -s ovf -p -M 48
-a -f 2 -6 -r [2001:db8::20]:0 -i
-A -f 3 -s twos -o
`

func TestFormatSaveRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		names *Names
	}{{"numeric", nil}, {"names", testNames()}} {
		t.Run(tc.name, func(t *testing.T) {
			p := Parser{Names: testNames()}
			t1, err := p.LoadRules(strings.NewReader(everyOption), "every")
			require.NoError(t, err)
			seen := map[string]bool{}
			for _, vs := range t1.Services {
				seen[vs.Service.Scheduler] = true
			}
			assert.Len(t, seen, len(Schedulers()), "every scheduler is used")

			saved := FormatSave(t1.Services, tc.names)
			t2, err := p.LoadRules(strings.NewReader(saved), "saved")
			require.NoError(t, err, saved)
			assert.Equal(t, normalize(t1.Services), normalize(t2.Services))
			assert.Equal(t, saved, FormatSave(t2.Services, tc.names), "saving is a fixed point")
		})
	}
}

func TestFormatSaveLines(t *testing.T) {
	tab, err := Parser{}.LoadRules(strings.NewReader(everyOption), "every")
	require.NoError(t, err)
	saved := FormatSave(tab.Services, nil)
	for _, want := range []string{
		"-A -t 10.0.0.1:0 -s lc -p 600 -M 255.255.0.0\n",
		"-A -t 10.0.0.2:80 -s wlc -p 1 -M 0.0.0.0 --pe sip\n",
		"-A -t 10.0.0.1:443 -s wrr -p 360\n",
		"-A -u 10.0.0.1:514 -s sh -o -b sh-fallback\n",
		"-A -u 10.0.0.1:515 -s sh -b sh-port,flag-3\n",
		"-A -t 10.0.0.3:81 -s wlc -b flag-1,flag-2,flag-3\n",
		"-A --sctp-service 10.0.0.4:5060 -s sed\n",
		"-A -t [2001:db8::1]:80 -s nq -p 300 -M 64\n",
		"-A -f 2 -6 -s ovf -p 360 -M 48\n",
		"-a -f 2 -6 -r [2001:db8::20]:0 -i -w 1 --tun-type ipip\n",
		"-a -t 10.0.0.1:80 -r 192.168.1.2:8080 -m -w 5 -x 100 -y 50\n",
		"-a -t 10.0.0.1:80 -r 192.168.1.4:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum\n",
		"-a -t 10.0.0.1:80 -r 192.168.1.7:80 -i -w 1 --tun-type gre --tun-csum\n",
		"-a -t 10.0.0.1:80 -r 192.168.1.8:80 -i -w 1 --tun-type gre --tun-nocsum\n",
		"-a -t 10.0.0.1:80 -r 192.168.1.9:9090 --fullnat -w 65535 -x 2147483647\n",
		"-a -t 10.0.0.1:80 -r [2001:db8::8]:80 -i -w 1 --tun-type ipip\n",
	} {
		assert.Contains(t, saved, want)
	}
	// Sorted: address services by family, protocol, address, port; fwmark last.
	var order []string
	for _, l := range strings.Split(saved, "\n") {
		if strings.HasPrefix(l, "-A ") {
			order = append(order, strings.Fields(l)[2])
		}
	}
	assert.Equal(t, []string{
		"10.0.0.1:0", "10.0.0.1:80", "10.0.0.1:443", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.3:81",
		"10.0.0.1:53", "10.0.0.1:54", "10.0.0.1:55", "10.0.0.1:514", "10.0.0.1:515",
		"10.0.0.4:5060", "[2001:db8::1]:80", "1", "2", "3",
	}, order)
}

// normalize sorts a configuration the way -S does, for comparisons that
// ignore insertion order.
func normalize(vss []VirtualService) []VirtualService {
	out := SortServices(vss)
	for i := range out {
		out[i].Dests = SortDests(out[i].Dests)
	}
	return out
}

func TestCompare(t *testing.T) {
	// Addresses far apart (ipvsadm's int subtraction gets these wrong).
	lo := Service{Protocol: ProtoTCP, Addr: addr("10.0.0.1"), Port: 80}
	hi := Service{Protocol: ProtoTCP, Addr: addr("200.0.0.1"), Port: 80}
	assert.Negative(t, CompareServices(lo, hi))
	assert.Positive(t, CompareServices(hi, lo))
	assert.Zero(t, CompareServices(lo, lo))
	assert.Negative(t, CompareDests(Dest{Addr: addr("10.0.0.1"), Port: 90}, Dest{Addr: addr("200.0.0.1"), Port: 80}))
	assert.Negative(t, CompareDests(Dest{Addr: addr("10.0.0.1"), Port: 80}, Dest{Addr: addr("10.0.0.1"), Port: 90}))
}
