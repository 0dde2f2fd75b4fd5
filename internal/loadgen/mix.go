package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mix is the default workload: each operation GETs or SETs a key chosen
// uniformly at random from a key space, reads and writes in the ratio
// Reads:Writes. Values are random printable bytes.
type Mix struct {
	// Keys is the size of the key space; default 1000.
	Keys int
	// Reads and Writes are the weights of GETs and SETs; both zero means
	// 80:20.
	Reads, Writes int
	// ValueSize is the size of a value in bytes; default 32.
	ValueSize int
	// KeyPrefix starts every key; default "redisfactory:load:".
	KeyPrefix string
	// TTL, if positive, is set on every key written (SET … PX), so that a
	// load test leaves nothing behind for long.
	TTL time.Duration
	// Seed seeds the workers' random sources (worker i uses Seed and i).
	Seed uint64
}

// DefaultKeyPrefix starts the keys Mix uses unless told otherwise.
const DefaultKeyPrefix = "redisfactory:load:"

const valueAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// Worker implements Workload.
func (m Mix) Worker(i int) OpFunc {
	if m.Keys <= 0 {
		m.Keys = 1000
	}
	if m.Reads <= 0 && m.Writes <= 0 {
		m.Reads, m.Writes = 80, 20
	}
	m.Reads, m.Writes = max(m.Reads, 0), max(m.Writes, 0)
	if m.ValueSize <= 0 {
		m.ValueSize = 32
	}
	if m.KeyPrefix == "" {
		m.KeyPrefix = DefaultKeyPrefix
	}
	rng := rand.New(rand.NewPCG(m.Seed, uint64(i)))
	key := make([]byte, 0, len(m.KeyPrefix)+20)
	value := make([]byte, m.ValueSize)
	total := m.Reads + m.Writes
	return func(ctx context.Context, c redis.UniversalClient) Outcome {
		key = strconv.AppendInt(append(key[:0], m.KeyPrefix...), int64(rng.IntN(m.Keys)), 10)
		k := string(key)
		if rng.IntN(total) < m.Reads {
			err := c.Get(ctx, k).Err()
			if errors.Is(err, redis.Nil) {
				return Outcome{Kind: Read}
			}
			return Outcome{Kind: Read, Hit: err == nil, Err: err}
		}
		for j := range value {
			value[j] = valueAlphabet[rng.IntN(len(valueAlphabet))]
		}
		return Outcome{Kind: Write, Err: c.Set(ctx, k, value, m.TTL).Err()}
	}
}
