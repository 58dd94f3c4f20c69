package capture

import (
	"bytes"
	"sync/atomic"
	"testing"
)

// fakeRingV2 builds a TPACKET_V2 ring of slots in ordinary memory, the
// first len(pkts) handed to the user as the kernel fills them.
func fakeRingV2(t testing.TB, frameSize, slots int, pkts []fakePkt) *rxRing {
	t.Helper()
	if len(pkts) > slots {
		t.Fatalf("%d packets for %d slots", len(pkts), slots)
	}
	mem := make([]byte, frameSize*slots)
	for i, p := range pkts {
		h := mem[i*frameSize : (i+1)*frameSize]
		snap := min(len(p.data), frameSize-v2MacStart)
		wire := p.wire
		if wire == 0 {
			wire = len(p.data)
		}
		ne.PutUint32(h[v2LenOff:], uint32(wire))
		ne.PutUint32(h[v2SnaplenOff:], uint32(snap))
		ne.PutUint16(h[v2MacOff:], v2MacStart)
		ne.PutUint32(h[v2SecOff:], 1700000000)
		ne.PutUint32(h[v2NsecOff:], uint32(i))
		ne.PutUint16(h[v2VlanTCIOff:], p.vlan)
		ne.PutUint32(h[v2SllIfindexOff:], uint32(p.ifindex))
		h[v2SllPkttypeOff] = p.pkttype
		copy(h[v2MacStart:], p.data[:snap])
		ne.PutUint32(h[v2StatusOff:], p.status|statusUser)
	}
	return &rxRing{mem: mem, mtu: 1500, isV2: true, v2: rxRingV2{frameSize: frameSize, slots: slots,
		copyBufs: [][]byte{make([]byte, rxCopyBufSize)}}}
}

func slotStatus(r *rxRing, i int) uint32 { return atomic.LoadUint32(r.slotStatus(i)) }

func TestRxRingV2Copy(t *testing.T) {
	r := fakeRingV2(t, 2048, 8, []fakePkt{
		{data: frameOf(60, 1), ifindex: 7},
		{data: frameOf(100, 2), status: statusCsumNotReady},
		{data: frameOf(64, 3), pkttype: PacketOutgoing},
		{data: frameOf(1514, 4), wire: 3000, status: statusGSOTCP},
		{data: frameOf(70, 5), status: statusVLANValid | statusCsumValid, vlan: 42},
	})
	fs := newFrames(2, 2048)
	var c rxCounts
	if n := r.readV2(-1, fs, false, &c); n != 2 {
		t.Fatalf("read %d, want 2", n)
	}
	if fs[0].N != 60 || fs[0].Buf[0] != 1 || fs[0].Ifindex != 7 || fs[0].TS != 1700000000e9 {
		t.Errorf("frame 0: %+v", fs[0])
	}
	if fs[1].N != 100 || !fs[1].CsumNotReady || fs[1].CsumValid {
		t.Errorf("frame 1: N %d csum %v/%v", fs[1].N, fs[1].CsumNotReady, fs[1].CsumValid)
	}
	// Copied out: the slots are the kernel's again at once.
	if slotStatus(r, 0) != statusKernel || slotStatus(r, 1) != statusKernel || slotStatus(r, 2)&statusUser == 0 {
		t.Errorf("slot statuses %d %d %d", slotStatus(r, 0), slotStatus(r, 1), slotStatus(r, 2))
	}
	if n := r.readV2(-1, fs, false, &c); n != 2 {
		t.Fatalf("read %d, want 2", n)
	}
	if slotStatus(r, 2) != statusKernel || c.outgoing != 1 {
		t.Errorf("outgoing slot status %d, outgoing %d", slotStatus(r, 2), c.outgoing)
	}
	if f := fs[0]; f.N != 1514 || f.Len != 3000 || !f.Truncated() || !f.Oversized || !f.GSO {
		t.Errorf("GSO frame: N %d Len %d oversized %v gso %v", f.N, f.Len, f.Oversized, f.GSO)
	}
	if f := fs[1]; !f.VLANValid || f.VLANTCI != 42 || !f.CsumValid || f.Oversized || f.RxHash != 0 {
		t.Errorf("VLAN frame: %+v", f)
	}
	if n := r.readV2(-1, fs, false, &c); n != 0 {
		t.Fatalf("read %d from an empty ring", n)
	}
	want := rxCounts{packets: 4, bytes: 60 + 100 + 1514 + 70, oversized: 1, truncated: 1, outgoing: 1}
	if c != want {
		t.Errorf("counts %+v, want %+v", c, want)
	}
}

func TestRxRingV2ZeroCopy(t *testing.T) {
	r := fakeRingV2(t, 256, 4, []fakePkt{{data: frameOf(60, 1)}, {data: frameOf(61, 2)}, {data: frameOf(62, 3)}})
	fs := make([]Frame, 2)
	var c rxCounts
	if n := r.readV2(-1, fs, true, &c); n != 2 {
		t.Fatalf("read %d", n)
	}
	for i, f := range fs {
		if f.N != 60+i || f.Buf[0] != byte(i+1) || cap(f.Buf) != f.N {
			t.Errorf("frame %d: N %d first %d cap %d", i, f.N, f.Buf[0], cap(f.Buf))
		}
	}
	if slotStatus(r, 0)&statusUser == 0 || slotStatus(r, 1)&statusUser == 0 {
		t.Fatalf("lent slots released early")
	}
	if n := r.readV2(-1, fs, true, &c); n != 1 || fs[0].Buf[0] != 3 {
		t.Fatalf("read %d", n)
	}
	if slotStatus(r, 0) != statusKernel || slotStatus(r, 1) != statusKernel || slotStatus(r, 2)&statusUser == 0 {
		t.Fatalf("statuses %d %d %d", slotStatus(r, 0), slotStatus(r, 1), slotStatus(r, 2))
	}
	// The kernel refills slot 3 and wraps to slot 0.
	for _, i := range []int{3, 0} {
		h := r.mem[i*256:]
		ne.PutUint32(h[v2SnaplenOff:], 60)
		ne.PutUint32(h[v2LenOff:], 60)
		ne.PutUint16(h[v2MacOff:], v2MacStart)
		h[v2MacStart] = byte(10 + i)
		atomic.StoreUint32(r.slotStatus(i), statusUser)
	}
	if n := r.readV2(-1, fs, true, &c); n != 2 || fs[0].Buf[0] != 13 || fs[1].Buf[0] != 10 {
		t.Fatalf("after the wrap: read %d", n)
	}
	if slotStatus(r, 2) != statusKernel {
		t.Fatalf("slot 2 not released")
	}
	r.readV2(-1, fs[:0], true, &c)
	if slotStatus(r, 3) != statusKernel || slotStatus(r, 0) != statusKernel {
		t.Fatalf("slots 3, 0 not released")
	}
}

// A frame the kernel marked as copied to the socket queue, with no queue
// to read it from, is handed on as the truncated head the slot holds and
// counted, never as whole.
func TestRxRingV2CopyMissing(t *testing.T) {
	for _, lend := range []bool{false, true} {
		r := fakeRingV2(t, 256, 2, []fakePkt{{data: frameOf(1000, 7), status: statusCopy | statusGSOTCP}})
		fs := newFrames(2, 2048)
		var c rxCounts
		if n := r.readV2(-1, fs, lend, &c); n != 1 {
			t.Fatalf("lend %v: read %d", lend, n)
		}
		if f := fs[0]; f.N != 256-v2MacStart || f.Len != 1000 || !f.Truncated() || c.truncated != 1 || c.errors != 1 {
			t.Errorf("lend %v: N %d Len %d counts %+v", lend, f.N, f.Len, c)
		}
	}
}

// Slots whose header points outside them are counted and skipped, and the
// read goes on with the next slot.
func TestRxRingV2Malformed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(h []byte)
	}{
		{"snaplen past slot", func(h []byte) { ne.PutUint32(h[v2SnaplenOff:], 1<<20) }},
		{"mac offset zero", func(h []byte) { ne.PutUint16(h[v2MacOff:], 0) }},
		{"mac offset past slot", func(h []byte) { ne.PutUint16(h[v2MacOff:], 0xffff) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := fakeRingV2(t, 256, 3, []fakePkt{{data: frameOf(60, 1)}, {data: frameOf(60, 2)}})
			tc.corrupt(r.mem[:256])
			var c rxCounts
			fs := newFrames(4, 2048)
			n := r.readV2(-1, fs, false, &c)
			if c.errors != 1 || n != 1 || fs[0].Buf[0] != 2 {
				t.Fatalf("read %d, errors %d", n, c.errors)
			}
			if slotStatus(r, 0) != statusKernel || slotStatus(r, 1) != statusKernel {
				t.Fatalf("slots not released")
			}
		})
	}
}

// One call reads at most one lap, even when every slot is ours (held for
// lending and filtered alike).
func TestRxRingV2OneLap(t *testing.T) {
	var pkts []fakePkt
	for range 4 {
		pkts = append(pkts, fakePkt{data: frameOf(60, 1), pkttype: PacketOutgoing})
	}
	r := fakeRingV2(t, 256, 4, pkts)
	fs := newFrames(8, 2048)
	var c rxCounts
	// Lending, the slots passed stay ours until the next call: a second
	// lap would read them again.
	if n := r.readV2(-1, fs, true, &c); n != 0 || c.outgoing != 4 {
		t.Fatalf("read %d, outgoing %d", n, c.outgoing)
	}
}

func FuzzRxRingV2(f *testing.F) {
	r := fakeRingV2(f, 256, 4, []fakePkt{{data: frameOf(60, 1)}, {data: frameOf(180, 2)}, {data: frameOf(300, 3), status: statusCopy}})
	f.Add(r.mem)
	f.Fuzz(func(t *testing.T, mem []byte) {
		const fs = 256
		if len(mem) < fs || len(mem) > 16*fs {
			return
		}
		mem = mem[:len(mem)/fs*fs]
		for _, lend := range []bool{false, true} {
			m := bytes.Clone(mem)
			for s := 0; s < len(m)/fs; s++ {
				ne.PutUint32(m[s*fs:], ne.Uint32(m[s*fs:])|statusUser)
			}
			r := &rxRing{mem: m, mtu: 1500, isV2: true, v2: rxRingV2{frameSize: fs, slots: len(m) / fs, copyBufs: [][]byte{make([]byte, 64)}}}
			frames := newFrames(16, 128)
			var c rxCounts
			n := r.readV2(-1, frames, lend, &c)
			for i := range n {
				if frames[i].N > len(frames[i].Buf) || frames[i].N < 0 {
					t.Fatalf("frame %d: N %d", i, frames[i].N)
				}
			}
		}
	})
}

func TestNormalizeConfigV2(t *testing.T) {
	link := Link{Index: 1, Name: "x", MTU: 1500}
	for _, bad := range []Config{
		{RXRing: RXRingV2, RXFrameSize: 2000 + 8},
		{RXRing: RXRingV2, RXFrameSize: 64},
		{RXRing: RXRingV2, RXFrameSize: 3072, BlockSize: 4096},
		{RXRing: RXRingV2, RxHash: true},
		{RXRing: 7},
	} {
		if err := normalize(&bad, link); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	c := Config{RXRing: RXRingV2}
	if err := normalize(&c, link); err != nil || c.RXFrameSize != 2048 {
		t.Fatalf("MTU 1500: %v, frame size %d", err, c.RXFrameSize)
	}
	c = Config{RXRing: RXRingV2}
	if err := normalize(&c, Link{MTU: 9000}); err != nil || c.RXFrameSize != 16384 || c.BlockSize%16384 != 0 {
		t.Fatalf("MTU 9000: %v, frame size %d, block %d", err, c.RXFrameSize, c.BlockSize)
	}
	for _, s := range []string{"v2", "v3"} {
		if v, err := ParseRXRing(s); err != nil || v.String() != s {
			t.Errorf("ParseRXRing(%q) = %v, %v", s, v, err)
		}
	}
	if _, err := ParseRXRing("v1"); err == nil {
		t.Error("v1 accepted")
	}
}

// Reading, lent or copied, allocates nothing per frame.
func TestRxRingV2NoAllocs(t *testing.T) {
	var pkts []fakePkt
	for i := range 8 {
		pkts = append(pkts, fakePkt{data: frameOf(60+i, byte(i))})
	}
	r := fakeRingV2(t, 256, 8, pkts)
	fs := newFrames(8, 2048)
	lent := make([]Frame, 8)
	var c rxCounts
	refill := func() {
		for i := range 8 {
			atomic.StoreUint32(r.slotStatus(i), statusUser)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		refill()
		if n := r.readV2(-1, fs, false, &c); n != 8 {
			t.Fatalf("copied %d", n)
		}
		refill()
		if n := r.readV2(-1, lent, true, &c); n != 8 {
			t.Fatalf("lent %d", n)
		}
		r.releaseV2()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}
