package webui

import "testing"

// One key's sessions hold at most maxStreamsPerKey live feeds, and all
// keys together maxUIStreams: one auditor's tabs cannot shut the others out.
func TestStreamsBoundedPerKeyAndInAll(t *testing.T) {
	u := &UI{streamsOf: map[string]int{}}
	for i := range maxStreamsPerKey {
		if !u.takeStream("key_a") {
			t.Fatalf("feed %d of key_a refused", i+1)
		}
	}
	if u.takeStream("key_a") {
		t.Fatal("key_a got a feed past its bound")
	}
	if !u.takeStream("key_b") {
		t.Fatal("key_b was shut out by key_a")
	}
	u.dropStream("key_a")
	if !u.takeStream("key_a") {
		t.Fatal("a closed feed of key_a was not given back")
	}
	for k := 0; u.streamTotal < maxUIStreams; k++ {
		if !u.takeStream(string(rune('c'+k/maxStreamsPerKey)) + "_key") {
			t.Fatalf("refused at %d feeds, below the bound", u.streamTotal)
		}
	}
	if u.takeStream("key_z") {
		t.Fatal("a feed past the total bound")
	}
	for key, n := range u.streamsOf {
		for range n {
			u.dropStream(key)
		}
	}
	if u.streamTotal != 0 || len(u.streamsOf) != 0 {
		t.Fatalf("after closing every feed: total %d, by key %v", u.streamTotal, u.streamsOf)
	}
}
