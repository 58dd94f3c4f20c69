package report

import "fmt"

const (
	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
)

// resetFinding says what a TCP reset as the reply means, in the words an
// operator uses: "reset from rs1: nothing listening on port 80; the
// director never saw the reset". ok is false when the reply is no reset.
func (nm *names) resetFinding(mode string, last, first *pkt, via int) (Finding, bool) {
	if last.ip.Proto != protoTCP || first.flags&tcpFlagRST == 0 {
		return Finding{}, false
	}
	who := nm.node[first.src]
	if who == "" {
		who = nm.short(first.src)
	}
	what := "the connection was reset"
	if last.flags&tcpFlagSYN != 0 {
		what = fmt.Sprintf("nothing listening on port %d (its kernel refused the SYN)", last.dport)
	}
	text := fmt.Sprintf("reset from %s: %s", who, what)
	switch {
	case (mode == "DR" || mode == "TUN") && via < 0:
		text += "; the director never saw the reset (it went straight to the client), so its entry for this connection stays until it times out"
	case via >= 0:
		text += "; the reset went back through the director"
	}
	return Finding{OK: false, Text: text}, true
}
