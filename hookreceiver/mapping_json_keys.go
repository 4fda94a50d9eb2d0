package hookreceiver

import (
	"bytes"
	"hash/maphash"
)

// keySeed is the per-process seed of key hashes, so that nobody can choose
// keys that collide.
var keySeed = maphash.MakeSeed()

// keySet finds a repeated key among the many keys of one object without
// copying them: it keeps each key's 64-bit hash and the offset of its opening
// quote, and compares bytes only when hashes are equal.
type keySet struct {
	data     []byte
	hash     func([]byte) uint64
	first    map[uint64]int // hash → offset of the first key with that hash
	overflow []hashedKey    // later keys whose hash a different key already had
}

type hashedKey struct {
	h  uint64
	at int
}

func newKeySet(data []byte) *keySet {
	return &keySet{
		data:  data,
		hash:  func(b []byte) uint64 { return maphash.Bytes(keySeed, b) },
		first: make(map[uint64]int, 4*keyLinearScanMax),
	}
}

// add records the decoded key whose string starts at offset at, and reports
// whether an equal key was recorded before.
func (s *keySet) add(key []byte, at int) bool {
	h := s.hash(key)
	prev, ok := s.first[h]
	if !ok {
		s.first[h] = at
		return false
	}
	if bytes.Equal(s.keyAt(prev), key) {
		return true
	}
	for _, o := range s.overflow {
		if o.h == h && bytes.Equal(s.keyAt(o.at), key) {
			return true
		}
	}
	s.overflow = append(s.overflow, hashedKey{h: h, at: at})
	return false
}

// keyAt decodes the key whose string starts at offset at.
func (s *keySet) keyAt(at int) []byte {
	end := skipString(s.data, at)
	raw := s.data[at+1 : max(at+1, end-1)]
	if bytes.IndexByte(raw, '\\') >= 0 {
		return appendUnescaped(nil, raw)
	}
	return raw
}
