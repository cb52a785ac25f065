package storagetest

import (
	"encoding/binary"
	"io"
	"math/rand/v2"

	"github.com/opencontainers/go-digest"
)

// Content is deterministic pseudo-random blob content, generated as it is
// read, so a blob of any size can be put and checked without holding it in
// memory. The same Seed and Size always give the same bytes.
type Content struct {
	// Seed chooses the bytes; different seeds give different content.
	Seed uint64
	// Size is the length in bytes.
	Size int64
}

// Reader returns a fresh reader of the content.
func (c Content) Reader() io.Reader {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], c.Seed)
	return io.LimitReader(rand.NewChaCha8(seed), c.Size)
}

// Bytes returns the content in memory; meant for small blobs.
func (c Content) Bytes() []byte {
	b, err := io.ReadAll(c.Reader())
	if err != nil {
		panic(err) // The generator cannot fail.
	}
	return b
}

// Digest returns the digest of the content with algorithm alg, computed by
// streaming it.
func (c Content) Digest(alg digest.Algorithm) digest.Digest {
	d, err := alg.FromReader(c.Reader())
	if err != nil {
		panic(err) // The generator cannot fail.
	}
	return d
}

// patternReader yields size bytes by cycling block: almost free to produce,
// so benchmarks measure the driver rather than the source.
type patternReader struct {
	block []byte
	off   int
	left  int64
}

// patternBlock returns the block a patternReader cycles. Its length, 65521,
// is prime, so that no power-of-two chunking lines up with the pattern.
func patternBlock(seed uint64) []byte {
	return Content{Seed: seed, Size: 65521}.Bytes()
}

// newPatternReader returns size bytes cycling block, which it shares.
func newPatternReader(block []byte, size int64) *patternReader {
	return &patternReader{block: block, left: size}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := 0
	for n < len(b) {
		m := copy(b[n:], p.block[p.off:])
		n += m
		p.off = (p.off + m) % len(p.block)
	}
	p.left -= int64(n)
	return n, nil
}
