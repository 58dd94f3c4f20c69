package capture

import (
	"bytes"
	"sync/atomic"
	"testing"
)

// fakePkt is one packet as the kernel would lay it in a TPACKET_V3 block.
type fakePkt struct {
	data    []byte
	wire    int // tp_len; 0 means len(data)
	status  uint32
	pkttype uint8
	ifindex int32
	vlan    uint16
}

// fakeRing builds a ring of blocks in ordinary memory, filled as the kernel
// fills them; blocks with packets are handed to the user.
func fakeRing(t testing.TB, blockSize int, blocks [][]fakePkt) *rxRing {
	t.Helper()
	mem := make([]byte, blockSize*len(blocks))
	for b, pkts := range blocks {
		base := b * blockSize
		off := blkHdrLen
		ne.PutUint32(mem[base+blkFirstPktOff:], uint32(off))
		ne.PutUint32(mem[base+blkNumPktsOff:], uint32(len(pkts)))
		for i, p := range pkts {
			h := mem[base+off:]
			mac := 82 // what the kernel uses for Ethernet: TPACKET_ALIGN(68+14)-14
			size := (mac + len(p.data) + 15) &^ 15
			if base+off+size > base+blockSize {
				t.Fatalf("block %d overflows", b)
			}
			wire := p.wire
			if wire == 0 {
				wire = len(p.data)
			}
			if i < len(pkts)-1 {
				ne.PutUint32(h[pktNextOff:], uint32(size))
			}
			ne.PutUint32(h[pktSecOff:], 1700000000)
			ne.PutUint32(h[pktNsecOff:], uint32(i))
			ne.PutUint32(h[pktSnaplenOff:], uint32(len(p.data)))
			ne.PutUint32(h[pktLenOff:], uint32(wire))
			ne.PutUint32(h[pktStatusOff:], p.status|statusUser)
			ne.PutUint16(h[pktMacOff:], uint16(mac))
			ne.PutUint32(h[pktVlanTCIOff:], uint32(p.vlan))
			ne.PutUint32(h[sllIfindexOff:], uint32(p.ifindex))
			h[sllPkttypeOff] = p.pkttype
			copy(h[mac:], p.data)
			off += size
		}
		if len(pkts) > 0 {
			ne.PutUint32(mem[base+blkStatusOff:], statusUser)
		}
	}
	return &rxRing{mem: mem, blockSize: blockSize, blocks: len(blocks), mtu: 1500}
}

func frameOf(n int, fill byte) []byte { return bytes.Repeat([]byte{fill}, n) }

func blockStatus(r *rxRing, b int) uint32 { return atomic.LoadUint32(r.status(b)) }

func TestRxRingCopy(t *testing.T) {
	r := fakeRing(t, 4096, [][]fakePkt{
		{{data: frameOf(60, 1), ifindex: 7}, {data: frameOf(100, 2), status: statusCsumNotReady}, {data: frameOf(64, 3), pkttype: PacketOutgoing}},
		{{data: frameOf(1514, 4), wire: 3000, status: statusGSOTCP}, {data: frameOf(70, 5), status: statusVLANValid | statusCsumValid, vlan: 42}},
		nil,
	})
	fs := newFrames(2, 2048)
	var c rxCounts
	// First call: two frames from block 0; its third is not looked at yet.
	if n := r.read(fs, false, &c); n != 2 {
		t.Fatalf("read %d, want 2", n)
	}
	if fs[0].N != 60 || fs[0].Buf[0] != 1 || fs[0].Ifindex != 7 || fs[0].TS != 1700000000e9 {
		t.Errorf("frame 0: %+v", fs[0])
	}
	if fs[1].N != 100 || !fs[1].CsumNotReady || fs[1].CsumValid {
		t.Errorf("frame 1: N %d csum %v/%v", fs[1].N, fs[1].CsumNotReady, fs[1].CsumValid)
	}
	if !r.open || blockStatus(r, 0) != statusUser {
		t.Errorf("block 0 released with a frame unread")
	}
	// Second call: block 0's outgoing frame filtered, block 0 released,
	// block 1 read.
	if n := r.read(fs, false, &c); n != 2 {
		t.Fatalf("read %d, want 2", n)
	}
	if blockStatus(r, 0) != statusKernel || c.outgoing != 1 {
		t.Errorf("block 0 status %d, outgoing %d: want it back with the kernel", blockStatus(r, 0), c.outgoing)
	}
	if f := fs[0]; f.N != 1514 || f.Len != 3000 || !f.Truncated() || !f.Oversized || !f.GSO {
		t.Errorf("GSO frame: N %d Len %d oversized %v gso %v", f.N, f.Len, f.Oversized, f.GSO)
	}
	if f := fs[1]; !f.VLANValid || f.VLANTCI != 42 || !f.CsumValid || f.Oversized {
		t.Errorf("VLAN frame: %+v", f)
	}
	// Third call: block 2 belongs to the kernel.
	if n := r.read(fs, false, &c); n != 0 {
		t.Fatalf("read %d from an empty ring", n)
	}
	want := rxCounts{packets: 4, bytes: 60 + 100 + 1514 + 70, oversized: 1, truncated: 1, outgoing: 1}
	if c != want {
		t.Errorf("counts %+v, want %+v", c, want)
	}
}

func TestRxRingShortBuffer(t *testing.T) {
	r := fakeRing(t, 4096, [][]fakePkt{{{data: frameOf(300, 9)}}, nil})
	fs := newFrames(1, 128)
	var c rxCounts
	if n := r.read(fs, false, &c); n != 1 {
		t.Fatal(n)
	}
	if fs[0].N != 128 || fs[0].Len != 300 || !fs[0].Truncated() || c.truncated != 1 {
		t.Errorf("N %d Len %d truncated count %d", fs[0].N, fs[0].Len, c.truncated)
	}
}

func TestRxRingZeroCopy(t *testing.T) {
	r := fakeRing(t, 4096, [][]fakePkt{
		{{data: frameOf(60, 1)}, {data: frameOf(61, 2)}},
		{{data: frameOf(62, 3)}},
		{{data: frameOf(63, 4)}},
	})
	fs := make([]Frame, 3)
	var c rxCounts
	if n := r.read(fs, true, &c); n != 3 {
		t.Fatalf("read %d", n)
	}
	for i, f := range fs {
		if f.N != 60+i || f.Buf[0] != byte(i+1) || cap(f.Buf) != f.N {
			t.Errorf("frame %d: N %d first %d cap %d", i, f.N, f.Buf[0], cap(f.Buf))
		}
	}
	// Lent: blocks 0 and 1 stay ours until the next call.
	if blockStatus(r, 0) != statusUser || blockStatus(r, 1) != statusUser {
		t.Fatalf("lent blocks released early")
	}
	if n := r.read(fs, true, &c); n != 1 || fs[0].Buf[0] != 4 {
		t.Fatalf("read %d", n)
	}
	if blockStatus(r, 0) != statusKernel || blockStatus(r, 1) != statusKernel || blockStatus(r, 2) != statusUser {
		t.Fatalf("statuses %d %d %d", blockStatus(r, 0), blockStatus(r, 1), blockStatus(r, 2))
	}
	r.read(fs[:0], true, &c)
	if blockStatus(r, 2) != statusKernel {
		t.Fatalf("block 2 not released")
	}
}

// A partly read block stays open across calls and is released once.
func TestRxRingPartialBlock(t *testing.T) {
	var pkts []fakePkt
	for i := range 10 {
		pkts = append(pkts, fakePkt{data: frameOf(60, byte(i))})
	}
	r := fakeRing(t, 4096, [][]fakePkt{pkts, nil})
	fs := newFrames(3, 2048)
	var c rxCounts
	var got []byte
	for range 4 {
		n := r.read(fs, false, &c)
		for i := range n {
			got = append(got, fs[i].Buf[0])
		}
	}
	if want := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !bytes.Equal(got, want) {
		t.Fatalf("order %v", got)
	}
	if blockStatus(r, 0) != statusKernel || r.cur != 1 {
		t.Fatalf("block 0 status %d, cur %d", blockStatus(r, 0), r.cur)
	}
}

// Malformed entries are counted and skipped, never read past the block.
func TestRxRingMalformed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(mem []byte)
	}{
		{"snaplen past block", func(m []byte) { ne.PutUint32(m[blkHdrLen+pktSnaplenOff:], 1<<20) }},
		{"mac offset zero", func(m []byte) { ne.PutUint16(m[blkHdrLen+pktMacOff:], 0) }},
		{"next offset past block", func(m []byte) { ne.PutUint32(m[blkHdrLen+pktNextOff:], 1<<20) }},
		{"first packet past block", func(m []byte) { ne.PutUint32(m[blkFirstPktOff:], 1<<20) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := fakeRing(t, 4096, [][]fakePkt{{{data: frameOf(60, 1)}, {data: frameOf(60, 2)}}, {{data: frameOf(60, 3)}}})
			tc.corrupt(r.mem)
			var c rxCounts
			fs := newFrames(8, 2048)
			n := r.read(fs, false, &c)
			if c.errors == 0 {
				t.Fatalf("no error counted")
			}
			if n == 0 || fs[n-1].Buf[0] != 3 {
				t.Fatalf("the next block was not read: %d frames", n)
			}
			if blockStatus(r, 0) != statusKernel || blockStatus(r, 1) != statusKernel {
				t.Fatalf("blocks not released")
			}
		})
	}
}

// FuzzRxRing feeds arbitrary ring contents to the walker: it must never
// panic or hand out bytes outside the block.
func FuzzRxRing(f *testing.F) {
	r := fakeRing(f, 4096, [][]fakePkt{{{data: frameOf(60, 1)}, {data: frameOf(100, 2)}}, {{data: frameOf(70, 3)}}})
	f.Add(r.mem)
	f.Fuzz(func(t *testing.T, mem []byte) {
		const bs = 4096
		if len(mem) < bs || len(mem) > 4*bs {
			return
		}
		mem = mem[:len(mem)/bs*bs]
		// The walker trusts the kernel's status word only.
		for b := 0; b < len(mem)/bs; b++ {
			ne.PutUint32(mem[b*bs+blkStatusOff:], statusUser)
		}
		r := &rxRing{mem: mem, blockSize: bs, blocks: len(mem) / bs, mtu: 1500}
		for _, lend := range []bool{false, true} {
			fs := newFrames(16, 256)
			var c rxCounts
			n := r.read(fs, lend, &c)
			for i := range n {
				if fs[i].N > len(fs[i].Buf) || fs[i].N < 0 {
					t.Fatalf("frame %d: N %d", i, fs[i].N)
				}
			}
		}
	})
}

func TestNormalizeConfig(t *testing.T) {
	link := Link{Index: 1, Name: "x", MTU: 1500}
	for _, bad := range []Config{
		{BlockSize: 5000},
		{Blocks: 1},
		{FrameSize: 2000 + 1},
		{Snap: -1},
	} {
		if err := normalize(&bad, link); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	var c Config
	if err := normalize(&c, link); err != nil {
		t.Fatal(err)
	}
	if c.BlockSize != defaultBlockSize || c.Blocks != defaultBlocks || c.BlockTimeout != defaultBlockTimeout || c.Batch != defaultBatch || c.TXMode != TXRing {
		t.Errorf("defaults %+v", c)
	}
	if got := txSlotSize(&c, Link{MTU: 9000}); got%16 != 0 || got < 32+9000+18 {
		t.Errorf("slot for MTU 9000: %d", got)
	}
}
