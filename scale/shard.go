package scale

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard is part K of N of a fleet: the apps whose name hashes to it. N
// runners, each given one K, split an org between them with no
// coordination: every app belongs to exactly one shard. The zero Shard is
// the whole fleet.
//
// An app's shard depends only on its name and N (rendezvous hashing), so
// it keeps its shard while other apps come and go, and when N changes only
// the apps that move to or from the added or removed shard change runner.
type Shard struct {
	K, N int
}

// ParseShard reads "K/N", 1 ≤ K ≤ N. The error says what is wrong with the
// value; the caller names the option it came from.
func ParseShard(s string) (Shard, error) {
	ks, ns, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Shard{}, errors.New("not of the form K/N")
	}
	k, errK := strconv.Atoi(strings.TrimSpace(ks))
	n, errN := strconv.Atoi(strings.TrimSpace(ns))
	switch {
	case errK != nil || errN != nil:
		return Shard{}, errors.New("K and N must be whole numbers")
	case n < 1:
		return Shard{}, fmt.Errorf("N is %d, the number of shards must be at least 1", n)
	case k < 1 || k > n:
		return Shard{}, fmt.Errorf("K is %d, shards are numbered 1 to %d", k, n)
	}
	return Shard{K: k, N: n}, nil
}

// String is "K/N", or "" for the whole fleet.
func (s Shard) String() string {
	if s.N == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.K, s.N)
}

// Contains reports whether the app belongs to the shard.
func (s Shard) Contains(app string) bool {
	if s.N <= 1 {
		return true
	}
	return ShardOf(app, s.N) == s.K
}

// ShardOf returns the shard, 1 to n, that app belongs to when a fleet is
// split in n: the shard with the highest score for the name. The scores
// are a fixed function of the name (FNV-1a, 64 bits) and the shard number
// (mixed by SplitMix64's finalizer), the same in every version and on every
// machine, so that runners of different builds agree.
func ShardOf(app string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(app))
	name := h.Sum64()
	best, bestScore := 1, uint64(0)
	for k := 1; k <= n; k++ {
		if score := mix64(name + uint64(k)*0x9e3779b97f4a7c15); k == 1 || score > bestScore {
			best, bestScore = k, score
		}
	}
	return best
}

// mix64 is SplitMix64's finalizer: every bit of x affects every bit of the
// result, so the scores of one name for different shards are unrelated.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
