package main

import (
	"fmt"
	"strings"

	"lvslab/config"
)

const progName = "lvsadm"

// version keeps ipvsadm's shape, "NAME vX.Y DATE (...)", so scripts that
// take the second word as ipvsadm's version keep working.
func version() string {
	return fmt.Sprintf("%s v1.31 2019/12/24 (ipvsadm-compatible; lvslab; IPVS v%s)\n", progName, ipvsVersion)
}

func usage() string {
	p := progName
	return version() + fmt.Sprintf(`Usage:
  %[1]s -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
  %[1]s -D virtual-service
  %[1]s -C
  %[1]s -R
  %[1]s -S [-n]
  %[1]s -P|Q virtual-service -z local-address
  %[1]s -G [virtual-service]
  %[1]s -a|e virtual-service -r server-address [options]
  %[1]s -d virtual-service -r server-address
  %[1]s -L|l [virtual-service] [options]
  %[1]s -Z [virtual-service]
  %[1]s --set tcp tcpfin udp
  %[1]s --set-defense name=value...
  %[1]s --start-daemon {master|backup} [daemon-options]
  %[1]s --stop-daemon {master|backup}
  %[1]s -h

Commands (long or short form):
  --add-service     -A        add a virtual service
  --edit-service    -E        replace a virtual service's settings
  --delete-service  -D        delete a virtual service and its real servers
  --clear           -C        delete every virtual service
  --restore         -R        read commands from stdin, one per line: one transaction, every line
                              is checked before any is applied; on an error nothing changes
  --save            -S        print the table as commands that -R reads
  --add-laddr       -P        add a FULLNAT local address to a service (-z)
  --del-laddr       -Q        delete a FULLNAT local address (-z)
  --get-laddr       -G        list the FULLNAT local addresses
  --add-server      -a        add a real server
  --edit-server     -e        replace a real server's settings
  --delete-server   -d        delete a real server
  --list            -L|-l     list the table
  --zero            -Z        zero the counters of one or all services
  --set tcp tcpfin udp        set the three timeouts in seconds (0 keeps one)
  --set-defense name=value... lvsd's flood defences: drop_entry, drop_packet,
                              secure_tcp (0 off, 1-2 automatic, 3 on),
                              amemthresh (free slots), am_droprate
  --start-daemon    state     start the connection sync daemon (master or backup)
  --stop-daemon     state     stop it
  --help            -h        this message
  --version         -v        the version

virtual-service:
  --tcp-service|-t  service-address   host[:port]
  --udp-service|-u  service-address   host[:port]
  --sctp-service    service-address   host[:port]
  --fwmark-service|-f fwmark          an integer greater than zero

Options:
  --ipv6         -6                   the fwmark service is IPv6 (after -f)
  --scheduler    -s scheduler         one of %[2]s (default %[3]s)
  --pe           engine               persistence engine: sip
  --persistent   -p [timeout]         persistent service (default %[4]d s)
  --netmask      -M netmask           persistence granularity: mask or prefix length
  --real-server  -r server-address    host[:port]
  --gatewaying   -g                   direct routing (default)
  --ipip         -i                   tunnelling
  --masquerading -m                   NAT
  --fullnat      -b                   FULLNAT (-b only with -a -e -d; needs -P first)
  --laddr        -z local-address     a FULLNAT local address (IPv4)
  --tun-type     type                 ipip (default), gue or gre
  --tun-port     port                 tunnel destination port (gue)
  --tun-nocsum                        tunnel without checksum (default)
  --tun-csum                          tunnel with checksum
  --tun-remcsum                       tunnel with remote checksum offload (gue)
  --weight       -w weight            0..65535 (default 1; 0 quiesces)
  --u-threshold  -x uthreshold        upper connection threshold (0: none)
  --l-threshold  -y lthreshold        lower connection threshold (0: none)
  --connection   -c                   list connections
  --timeout                           list the timeouts
  --daemon                            list sync daemons
  --defense                           list lvsd's flood defence settings
  --stats                             list counters
  --rate                              list rates
  --exact        -X                   numbers in full
  --thresholds                        list thresholds
  --persistent-conn                   list persistent connections
  --tun-info                          list tunnel settings
  --nosort                            keep lvsd's order
  --sort                              sort (the default)
  --ops          -o                   one-packet scheduling (UDP)
  --synproxy    -j enable|disable    SYN proxy: answer SYNs with cookies (TCP, NAT/FULLNAT)
  --numeric      -n                   no host or service names
  --sched-flags  -b flags             (with -A -E) comma list: flag-1 flag-2 flag-3 sh-fallback sh-port mh-fallback mh-port

Daemon options (with --start-daemon):
  --mcast-interface interface         the interface sync messages go out on or come in from (default eth0)
  --syncid       sid                  0..255; a backup with sid 0 takes every master's messages (default 0)
  --sync-maxlen  length               message size (default: 1500 - 28 for a master, the MTU - 28 for a backup)
  --mcast-group  address              default 224.0.0.81
  --mcast-port   port                 default 8848
  --mcast-ttl    ttl                  1..255 (default 1)

lvsadm options:
  --socket NAME                       lvsd's control socket (default $%[5]s, else @lvsd);
                                      a NAME with a slash is a file-system path
Names come from /etc/hosts and /etc/services only, never from DNS.
As ipvsadm, lvsadm needs root or CAP_NET_ADMIN, even to list; lvsd --unprivileged-list
lets other users list and save (-L, -S).
`, p, strings.Join(config.Schedulers(), "|"), config.DefaultScheduler,
		int(config.DefaultPersistTimeout.Seconds()), socketEnvVar)
}
