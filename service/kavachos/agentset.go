package kavachos

import "encoding/hex"

// agentSet is the set of the agents an import run may write rows for:
// those it added, and those it found already present as the same agent
// (same ID, same token hash). Its IDs are UUIDs, kept as their 16 bytes
// when written in lower case (as KavachOS writes them), so that a million
// agents take some tens of MB (docs/import.md); the rare ID in upper or
// mixed case is kept as it is, since Kavach compares IDs as strings.
type agentSet struct {
	uuids map[[16]byte]struct{}
	other map[string]struct{}
}

func newAgentSet() *agentSet {
	return &agentSet{uuids: map[[16]byte]struct{}{}, other: map[string]struct{}{}}
}

// key is id's 16 bytes, when id is a UUID written in lower case.
func key(id string) ([16]byte, bool) {
	var k [16]byte
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return k, false
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if id[i] == '-' {
			i--
			continue
		}
		c0, c1 := id[i], id[i+1]
		if !lowerHex(c0) || !lowerHex(c1) {
			return k, false
		}
		if _, err := hex.Decode(k[j:j+1], []byte{c0, c1}); err != nil {
			return k, false
		}
		j++
	}
	return k, j == 16
}

func lowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

func (s *agentSet) add(id string) {
	if k, ok := key(id); ok {
		s.uuids[k] = struct{}{}
		return
	}
	s.other[id] = struct{}{}
}

func (s *agentSet) has(id string) bool {
	if k, ok := key(id); ok {
		_, in := s.uuids[k]
		return in
	}
	_, in := s.other[id]
	return in
}
