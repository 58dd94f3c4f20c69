package service

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFTPContent: any slice of a file is the same bytes, however it is
// cut, and blocks differ.
func TestFTPContent(t *testing.T) {
	whole := make([]byte, 1000)
	FTPContent(whole, 0)
	part := make([]byte, 77)
	FTPContent(part, 333)
	assert.Equal(t, whole[333:410], part)
	var blk [8]byte
	binary.BigEndian.PutUint64(blk[:], 1)
	sum := sha256.Sum256(blk[:])
	assert.Equal(t, sum[:], whole[32:64])
}

// TestDNSTXTAnswer: the query dnsmasq gets and the answer it sends, built
// by hand (with a compressed name, as dnsmasq writes it).
func TestDNSTXTAnswer(t *testing.T) {
	q, err := dnsQuery(0x1234, DNSName, dnsTypeTXT)
	require.NoError(t, err)
	assert.Equal(t, []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 6, 'w', 'h', 'o', 'a', 'm', 'i', 6, 'l', 'v', 's', 'l', 'a', 'b', 0, 0, 16, 0, 1}, q)
	ans := append([]byte(nil), q...)
	ans[2], ans[3], ans[7] = 0x85, 0x80, 1 // QR AA RD RA, one answer
	ans = append(ans, 0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 0, 0, 4, 3, 'r', 's', '1')
	txt, match, err := dnsTXTAnswer(ans, 0x1234)
	require.NoError(t, err)
	assert.True(t, match)
	assert.Equal(t, "rs1", txt)

	_, match, _ = dnsTXTAnswer(ans, 0x4321)
	assert.False(t, match, "another query's answer")
	nx := append([]byte(nil), ans[:len(q)]...)
	nx[2], nx[3] = 0x85, 0x83
	_, match, err = dnsTXTAnswer(nx, 0x1234)
	assert.True(t, match)
	assert.EqualError(t, err, "dns: rcode 3")
	_, _, err = dnsTXTAnswer(ans[:len(ans)-2], 0x1234)
	assert.EqualError(t, err, "dns: answer past the datagram")
	_, err = dnsQuery(1, "bad..name", dnsTypeTXT)
	assert.Error(t, err)
}
