package conntrack

import "testing"

// TestRangeFromWalksInPieces: walking the table in chunks visits every
// connection once, as one Range does.
func TestRangeFromWalksInPieces(t *testing.T) {
	tb, _, now := buildEstablished(t, 1000, 0)
	var whole []ConnID
	tb.Range(now, func(e *Entry) bool { whole = append(whole, e.ID); return true })
	if len(whole) != 1000 {
		t.Fatalf("Range listed %d connections, want 1000", len(whole))
	}
	for _, n := range []int{1, 7, 333, 1000, 5000} {
		var got []ConnID
		chunks := 0
		for next := ConnID(1); next != 0; chunks++ {
			next = tb.RangeFrom(next, n, now, func(e *Entry) bool { got = append(got, e.ID); return true })
		}
		if len(got) != len(whole) {
			t.Fatalf("chunks of %d: %d connections, want %d", n, len(got), len(whole))
		}
		for i := range got {
			if got[i] != whole[i] {
				t.Fatalf("chunks of %d: entry %d is %d, want %d", n, i, got[i], whole[i])
			}
		}
		if n < 1000 && chunks < 1000/n {
			t.Errorf("chunks of %d: only %d pieces", n, chunks)
		}
	}
	// fn stopping ends the walk.
	if next := tb.RangeFrom(1, 10, now, func(*Entry) bool { return false }); next != 0 {
		t.Errorf("a stopped walk continues at %d", next)
	}
}
