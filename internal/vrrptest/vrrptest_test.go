package vrrptest

import "testing"

func TestRejections(t *testing.T) {
	log := `Wed Dec  2 03:45:59 2026: (VI_1) IPSEC-AH : sequence number 11 already processed. Packet dropped. Local(11)
time=... msg="(VI_1) IPSEC-AH : sequence number 12 already processed. Packet dropped. Local(12)"
time=... msg="bogus VRRP packet received on veth0 !!!"
Wed Dec  2 03:46:01 2026: (VI_1) IPSEC-AH : Syncing seq_num - Increment seq
(VI_1) Entering MASTER STATE
(VI_1) received an invalid passwd!
bogus VRRP packet received on veth0 !!!`
	other, replays := Rejections(log)
	if len(replays) != 3 {
		t.Errorf("replays %q, want the two drops and the sync", replays)
	}
	if len(other) != 2 || other[0] != "(VI_1) received an invalid passwd!" {
		t.Errorf("other %q, want the password rejection and its bogus line", other)
	}
}
