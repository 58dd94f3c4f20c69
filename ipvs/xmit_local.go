package ipvs

// LOCALNODE: a real server at one of the director's own addresses, with DR
// or TUN, gets the packet through the local stack. Its replies leave by the
// kernel, so there is no out path here.

import (
	"errors"

	"lvslab/rewrite"
)

// localIn hands a packet for a LOCALNODE real server to our own kernel
// (ip_vs_null_xmit): unchanged but for the destination MAC, which becomes
// the local device's so the stack takes it as its own.
func (e *Engine) localIn(frame []byte) {
	if e.local == nil && e.localErr == nil {
		if e.cfg.OpenLocal == nil {
			e.localErr = errors.New("no local delivery device")
		} else {
			e.local, e.localErr = e.cfg.OpenLocal()
		}
		if e.localErr != nil {
			e.log.Error("LOCALNODE real server: cannot reach the local stack", "err", e.localErr)
		}
	}
	if e.local == nil {
		e.ctr[rxNeighFail]++
		return
	}
	rewrite.Ethernet(frame).SetDst(e.local.MAC())
	if _, err := e.local.Write(frame); err != nil {
		e.ctr[txErrors]++
		return
	}
	e.ctr[txLocal]++
}
