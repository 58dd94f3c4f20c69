package main

import (
	"strings"
	"testing"
)

// The fork's syn_proxy keyword in a virtual_server switches lvsd's SYN
// proxy on for the service lvskeepalived installs (lvsadm -S shows -j
// enable), with its checked real server.
func TestSynProxyKeywordInstalls(t *testing.T) {
	l := newLab(t, "kasp", "172.16.0.2")
	l.serve("172.16.0.2", 80)
	l.writeConf(`virtual_server 10.0.0.100 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    syn_proxy
    real_server 172.16.0.2 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`)
	l.start()
	l.waitTable("the SYN-proxy service with its real server", func(save string) bool {
		return strings.Contains(save, "-A -t 10.0.0.100:80 -s rr -j enable\n") &&
			strings.Contains(save, "-a -t 10.0.0.100:80 -r 172.16.0.2:80 -m -w 1\n")
	})
}
