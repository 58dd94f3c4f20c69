package report

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWalkSaysWhatAResetMeans(t *testing.T) {
	rs1 := [6]byte{2, 0, 0, 0, 0, 0x21}
	nm := &names{label: map[[6]byte]string{}, node: map[[6]byte]string{rs1: "rs1"}, director: map[string]bool{}, rs: map[string]bool{"rs1": true}}
	syn := &pkt{hasIP: true, ip: ipHdr{Proto: protoTCP}, dport: 80, flags: tcpFlagSYN}
	rst := &pkt{hasIP: true, ip: ipHdr{Proto: protoTCP}, src: rs1, flags: tcpFlagRST | 0x10}

	f, ok := nm.resetFinding("DR", syn, rst, -1)
	assert.True(t, ok)
	assert.False(t, f.OK)
	assert.Equal(t, "reset from rs1: nothing listening on port 80 (its kernel refused the SYN); the director never saw the reset (it went straight to the client), so its entry for this connection stays until it times out", f.Text)

	data := &pkt{hasIP: true, ip: ipHdr{Proto: protoTCP}, dport: 80, flags: 0x18}
	f, _ = nm.resetFinding("NAT", data, rst, 0)
	assert.Equal(t, "reset from rs1: the connection was reset; the reset went back through the director", f.Text)

	synack := &pkt{hasIP: true, ip: ipHdr{Proto: protoTCP}, src: rs1, flags: tcpFlagSYN | 0x10}
	_, ok = nm.resetFinding("DR", syn, synack, -1)
	assert.False(t, ok)
}
