package keepalived

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syn_proxy on a NAT virtual server reaches the service; on DR, or on UDP,
// the virtual server is refused with the line that says why.
func TestSynProxyKeyword(t *testing.T) {
	cfg := loadMap(t, MapFS{"/k/keepalived.conf": `
virtual_server 10.0.0.100 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    syn_proxy
    real_server 172.16.0.2 8080 {
        weight 1
    }
}
virtual_server 10.0.0.101 80 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    syn_proxy
    real_server 172.16.0.3 80 {
    }
}
virtual_server 10.0.0.102 53 {
    lb_algo rr
    lb_kind NAT
    protocol UDP
    syn_proxy
    real_server 172.16.0.4 53 {
    }
}
`})
	tab := cfg.Table()
	require.Len(t, tab.Services, 1, diagStrings(cfg))
	assert.True(t, tab.Services[0].Service.SynProxy)
	assert.Equal(t, "10.0.0.100", tab.Services[0].Service.Addr.String())
	var msgs []string
	for _, d := range cfg.Diags {
		if strings.Contains(d.Msg, "syn_proxy") {
			msgs = append(msgs, d.String())
			assert.NotZero(t, d.Pos.Line)
		}
	}
	require.Len(t, msgs, 2, diagStrings(cfg))
	assert.Contains(t, msgs[0], "keepalived.conf:16")
	assert.Contains(t, msgs[0], "forwarded by DR")
	assert.Contains(t, msgs[1], "protocol UDP")
}
