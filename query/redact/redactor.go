// The Redactor: a set of secrets, each with its derived forms, replaced in
// any text in one pass.

package redact

import (
	"slices"
	"strings"
)

// Redactor replaces secrets, and every run of PieceLen characters of one,
// in text, ignoring letter case (a value echoed lowercased is still found).
// Add is not safe for concurrent use; Redact and Holdback only read, and
// may be called at once from many goroutines once the secrets are added.
type Redactor struct {
	// pieces holds, per length, the lowercased pieces to find: the
	// PieceLen-character windows of each secret, or a shorter secret whole.
	pieces map[int]map[string]bool
	// prefixes holds the proper prefixes of the pieces, for Holdback.
	prefixes map[string]bool
	lens     []int
	// starts is a filter of where a piece can start: the bit of the first
	// four bytes of every piece (see startBit) is set. Most of a text's
	// positions are ruled out by one bit, not a map lookup per length.
	starts [1 << (startBits - 6)]uint64
	// added holds the secrets added, each added once.
	added map[string]bool
	// words holds the lowercased secrets shorter than MinSecretLen, which
	// are redacted where they stand as a whole word (see isWordByte);
	// wordPrefixes their prefixes and themselves, for Holdback.
	words        map[string]bool
	wordPrefixes map[string]bool
	maxWord      int
}

// startBits is the size, in bits of hash, of Redactor.starts: 2^16 bits
// (8 KiB), so that a few hundred pieces leave a random position of a
// text about one chance in a hundred of a lookup.
const startBits = 16

// startBit hashes the four bytes at the start of s (at least four) to a
// bit of Redactor.starts. Every piece is at least MinSecretLen long.
func startBit(s string) uint32 {
	v := uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
	return (v * 0x9E3779B1) >> (32 - startBits)
}

// NewRedactor returns a Redactor of secrets, each taken as it is (see
// SecretForms for the forms a value may take).
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{pieces: map[int]map[string]bool{}, prefixes: map[string]bool{}, added: map[string]bool{},
		words: map[string]bool{}, wordPrefixes: map[string]bool{}}
	r.Add(secrets...)
	return r
}

// Add adds secrets. One shorter than MinSecretLen is redacted only where
// it stands as a whole word, between characters that are not letters,
// digits, "_" or "-": the token "tok" in "Bearer tok", not in "tokens".
func (r *Redactor) Add(secrets ...string) {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		sec = lowerASCII(sec)
		if r.added[sec] {
			continue
		}
		r.added[sec] = true
		if len(sec) < MinSecretLen {
			r.words[sec] = true
			r.maxWord = max(r.maxWord, len(sec))
			for j := 1; j <= len(sec); j++ {
				r.wordPrefixes[sec[:j]] = true
			}
			continue
		}
		n := PieceLen
		for i := 0; i+n <= len(sec); i++ {
			piece := sec[i : i+n]
			if piece[0] == ' ' {
				continue // the neighbours cover it; the text's spaces stay
			}
			if piece[n-1] == ' ' {
				// "FlyV1 " alone is no secret: the piece goes on to the
				// next character that is not a space.
				j := i + n
				for j < len(sec) && sec[j] == ' ' {
					j++
				}
				if j == len(sec) {
					continue
				}
				r.addPiece(sec[i : j+1])
				continue
			}
			r.addPiece(piece)
		}
	}
}

// addPiece adds one lowercased piece of a secret to find.
func (r *Redactor) addPiece(piece string) {
	n := len(piece)
	if r.pieces[n] == nil {
		r.pieces[n] = map[string]bool{}
		r.lens = append(r.lens, n)
		slices.Sort(r.lens)
	}
	r.pieces[n][piece] = true
	bit := startBit(piece)
	r.starts[bit/64] |= 1 << (bit % 64)
	for j := 1; j < n; j++ {
		r.prefixes[piece[:j]] = true
	}
}

// Redact returns s with every secret and every piece of one replaced by
// REDACTED, and the credentials of URLs removed.
func (r *Redactor) Redact(s string) string {
	if len(r.lens) > 0 || len(r.words) > 0 {
		s = r.replace(s)
	}
	return RedactURL(s)
}

func (r *Redactor) replace(s string) string {
	lower := lowerASCII(s)
	var spans [][2]int // [start, end) of each match, by start
	for i := range len(lower) - MinSecretLen + 1 {
		if len(r.lens) == 0 {
			break
		}
		if bit := startBit(lower[i:]); r.starts[bit/64]&(1<<(bit%64)) == 0 {
			continue
		}
		for _, n := range r.lens {
			if i+n <= len(lower) && r.pieces[n][lower[i:i+n]] {
				spans = append(spans, [2]int{i, i + n})
			}
		}
	}
	if len(r.words) > 0 {
		for w := range r.words {
			for off := 0; ; {
				j := strings.Index(lower[off:], w)
				if j < 0 {
					break
				}
				start, end := off+j, off+j+len(w)
				if (start == 0 || !isWordByte(lower[start-1])) && (end == len(lower) || !isWordByte(lower[end])) {
					spans = append(spans, [2]int{start, end})
				}
				off = start + 1
			}
		}
		slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	}
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(spans); {
		start, end := spans[i][0], spans[i][1]
		for i++; i < len(spans) && spans[i][0] <= end; i++ {
			end = max(end, spans[i][1])
		}
		b.WriteString(s[last:start])
		b.WriteString(redacted)
		last = end
	}
	b.WriteString(s[last:])
	return b.String()
}

// isWordByte reports whether c belongs to a word, for the secrets that
// are redacted as whole words: a letter, a digit, "_", "-" or a byte of a
// non-ASCII character.
func isWordByte(c byte) bool {
	return c >= 0x80 || c == '_' || c == '-' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// Holdback returns the length of the longest end of s that could be the
// start of a secret: a writer that redacts a stream keeps it back until
// the next write tells.
func (r *Redactor) Holdback(s string) int {
	hold := 0
	if len(r.lens) > 0 {
		for k := min(len(s), r.lens[len(r.lens)-1]-1); k > 0; k-- {
			if r.prefixes[lowerASCII(s[len(s)-k:])] {
				hold = k
				break
			}
		}
	}
	// A short secret, or the start of one, standing as a word at the end
	// may go on in the next write.
	for k := min(len(s), r.maxWord); k > hold; k-- {
		if r.wordPrefixes[lowerASCII(s[len(s)-k:])] && (k == len(s) || !isWordByte(s[len(s)-k-1])) {
			return k
		}
	}
	return hold
}
