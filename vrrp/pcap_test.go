package vrrp

import (
	"encoding/hex"
	"time"

	"github.com/gopacket/gopacket"
)

func captureInfo(n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: time.Unix(0, 0), CaptureLength: n, Length: n}
}

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }
