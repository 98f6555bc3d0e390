package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

// crockford is the base32 alphabet of ULIDs: no I, L, O, U; sorts like the bytes.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// idGen makes IDs like "agt_01JD3X…": 128 bits as 26 Crockford base32
// characters, laid out like a UUIDv7 with a counter: a 48-bit millisecond
// timestamp, a 12-bit sequence within the millisecond, and 68 fresh random
// bits. IDs from one process sort in creation order (the sequence orders
// those of one millisecond), and every ID carries 68 random bits, so seeing
// one ID does not tell the next.
type idGen struct {
	mu     sync.Mutex
	lastMs uint64
	seq    uint16
}

const maxSeq = 1<<12 - 1

func (g *idGen) next(prefix string, now time.Time) string {
	ms := uint64(now.UnixMilli())
	g.mu.Lock()
	switch {
	case ms > g.lastMs:
		g.lastMs, g.seq = ms, 0
	case g.seq < maxSeq:
		// Same (or an earlier, clock stepped back) millisecond: keep order.
		g.seq++
	default:
		// 4096 IDs in one millisecond: borrow the next one.
		g.lastMs++
		g.seq = 0
	}
	ms, seq := g.lastMs, g.seq
	g.mu.Unlock()

	var raw [16]byte
	_, _ = rand.Read(raw[6:]) // crypto/rand.Read never fails (Go 1.24+)
	// Bytes 0-5: the millisecond's low 48 bits; 6-7: the 12-bit sequence
	// over 4 of the random bits.
	binary.BigEndian.PutUint64(raw[:8], ms<<16|uint64(seq)<<4|uint64(raw[7]&0x0f))
	return prefix + encodeBase32(raw)
}

// idAt is the smallest ID next could make with prefix at t: every ID made
// at t or later sorts after it, every one made before sorts before.
func idAt(prefix string, t time.Time) string {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(t.UnixMilli())<<16) //nolint:gosec // G115: times after 1970
	return prefix + encodeBase32(raw)
}

// encodeBase32 writes 128 bits as 26 Crockford characters, most significant first.
func encodeBase32(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// WellFormedID reports whether id has the shape of the IDs next makes with
// prefix: the prefix and 26 Crockford base32 characters. A cursor, which is
// the last ID of a page, is checked with it before it reaches a query.
func WellFormedID(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) != 26 {
		return false
	}
	for i := range len(rest) {
		if !strings.ContainsRune(crockford, rune(rest[i])) {
			return false
		}
	}
	return true
}

// ImportedID is the ID of a row brought over from another system: the
// prefix and, like the IDs next makes, the millisecond of t first (so it
// sorts by time among Kavach's own), then 80 bits of the SHA-256 of the
// row's ID there, so that importing the same row again gives the same ID.
func ImportedID(prefix string, t time.Time, sourceID string) string {
	var raw [16]byte
	sum := sha256.Sum256([]byte(sourceID))
	binary.BigEndian.PutUint64(raw[:8], uint64(t.UnixMilli())<<16) //nolint:gosec // G115: times after 1970
	copy(raw[6:], sum[:10])
	return prefix + encodeBase32(raw)
}

// WellFormedAgentID reports whether id is an agent ID: one Kavach made
// (agt_…) or a UUID, which agents imported from KavachOS keep, because
// the apps that call Kavach stored them.
func WellFormedAgentID(id string) bool {
	return WellFormedID("agt_", id) || IsUUID(id)
}

// IsUUID reports whether s is a UUID in its canonical text form (any
// version, either case).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}
