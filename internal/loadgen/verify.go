package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// StaleClass is the class a stale read is reported under.
const StaleClass = "stale_read"

// Verify is a workload that checks what it reads: every worker has keys of
// its own, remembers the value it last wrote to each, and counts a read
// that returns anything else as a failure of class StaleClass. With a
// client-side cache in front of the server, a stale read would be a cached
// value older than the worker's own acknowledged write — the guarantee the
// cache must keep (read-your-writes, invalidation).
//
// A key the server lost (a restart without persistence) reads as missing;
// that is not stale, and the worker forgets the value it wrote.
type Verify struct {
	// Keys is the number of keys of each worker; default 100.
	Keys int
	// Reads and Writes are the weights of GETs and SETs; both zero means
	// 80:20.
	Reads, Writes int
	// KeyPrefix starts every key; default DefaultKeyPrefix + "verify:".
	KeyPrefix string
	// Seed seeds the workers' random sources.
	Seed uint64
}

// Worker implements Workload.
func (v Verify) Worker(i int) OpFunc {
	if v.Keys <= 0 {
		v.Keys = 100
	}
	if v.Reads <= 0 && v.Writes <= 0 {
		v.Reads, v.Writes = 80, 20
	}
	v.Reads, v.Writes = max(v.Reads, 0), max(v.Writes, 0)
	if v.KeyPrefix == "" {
		v.KeyPrefix = DefaultKeyPrefix + "verify:"
	}
	prefix := v.KeyPrefix + "w" + strconv.Itoa(i) + ":"
	rng := rand.New(rand.NewPCG(v.Seed, uint64(i)))
	last := make([]string, v.Keys) // "" = never written (or lost)
	seq := 0
	total := v.Reads + v.Writes
	return func(ctx context.Context, c redis.UniversalClient) Outcome {
		n := rng.IntN(v.Keys)
		key := prefix + strconv.Itoa(n)
		if rng.IntN(total) < v.Reads {
			got, err := c.Get(ctx, key).Result()
			switch {
			case errors.Is(err, redis.Nil):
				last[n] = "" // lost by the server: nothing to compare
				return Outcome{Kind: Read}
			case err != nil:
				return Outcome{Kind: Read, Err: err}
			case last[n] != "" && got != last[n]:
				return Outcome{Kind: Read, Err: &ClassError{Class: StaleClass,
					Err: fmt.Errorf("stale read of %s: got %q, this worker last wrote %q", key, got, last[n])}}
			}
			return Outcome{Kind: Read, Hit: true}
		}
		seq++
		val := "w" + strconv.Itoa(i) + "-" + strconv.Itoa(seq)
		err := c.Set(ctx, key, val, 0).Err()
		if err == nil {
			last[n] = val
		} else {
			// The write may or may not have happened: stop comparing.
			last[n] = ""
		}
		return Outcome{Kind: Write, Err: err}
	}
}
