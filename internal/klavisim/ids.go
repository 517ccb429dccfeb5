package klavisim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"sync"
)

// idSource makes the ids that appear in webhook bodies and redirects
// (linkId, consentId, externalTrackId, requestId, eventId). With a non-zero
// seed they come from a seeded generator, so two simulators fed the same
// sequence of calls produce the same bytes; otherwise from crypto/rand.
// Link tokens never come from here: they stay unguessable.
type idSource struct {
	seed int64

	mu  sync.Mutex
	rng *mrand.Rand // nil: crypto/rand
}

func newIDSource(seed int64) *idSource {
	g := &idSource{seed: seed}
	if seed != 0 {
		g.rng = mrand.New(mrand.NewPCG(uint64(seed), 0x6b6c6176692d6964))
	}
	return g
}

// fill writes random bytes into b.
func (g *idSource) fill(b []byte) {
	if g.rng == nil {
		_, _ = rand.Read(b) // never fails since Go 1.24
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], g.rng.Uint64())
		copy(b[i:], w[:])
	}
}

// uuid returns a version-4 UUID, the shape of Klavi's ids.
func (g *idSource) uuid() string {
	var b [16]byte
	g.fill(b[:])
	return formatUUID(b)
}

// text returns 26 base32 characters, like rand.Text.
func (g *idSource) text() string {
	var b [16]byte
	g.fill(b[:])
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])[:26]
}

// hex returns n random bytes as lower-case hex.
func (g *idSource) hex(n int) string {
	b := make([]byte, n)
	g.fill(b)
	return hex.EncodeToString(b)
}

// derived returns a UUID that depends only on the seed and parts. Work that
// runs in the background (report generation) names its ids this way, so
// that they do not depend on how its goroutines interleave with the API's
// handlers.
func (g *idSource) derived(parts ...string) string {
	sum := hashParts(g.seed, parts...)
	var b [16]byte
	copy(b[:], sum[:16])
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// hashParts hashes the seed and parts unambiguously (each part is length
// prefixed).
func hashParts(seed int64, parts ...string) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(seed))
	h.Write(n[:])
	for _, p := range parts {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// chance reports whether the event named by parts falls within fraction p,
// deterministically for the seed.
func chance(seed int64, p float64, parts ...string) bool {
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	}
	sum := hashParts(seed, parts...)
	u := float64(binary.LittleEndian.Uint64(sum[:8])>>11) / (1 << 53)
	return u < p
}

// seedFor derives a seed for a generator from the simulator seed and parts.
func seedFor(seed int64, parts ...string) int64 {
	sum := hashParts(seed, parts...)
	return int64(binary.LittleEndian.Uint64(sum[:8]) >> 1)
}
