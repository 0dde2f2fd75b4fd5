package factory

import (
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/schema"
)

// startAutoPipeline builds the auto-pipeliner of a profile with
// pipeline.auto: a second go-redis client with the profile's options (its
// own connections, the same dialer, health checks, extensions and events)
// whose auto-pipeliner batches the commands of concurrent callers.
//
// It is a client of its own because a batch must be retried differently
// from a pipeline the user built: the commands of a batch come from
// independent callers, so the retry policy judges each one alone
// (retry.Policy.BatchHook) — a failed batch retries its GETs and never its
// INCR — while a user's Pipelined keeps its all-or-nothing rule on the
// profile's main client. go-redis's own retries stay off on both.
func (c *Client) startAutoPipeline(p *schema.Profile, cm common, outer func(redis.UniversalClient)) error {
	var bc *redis.Client
	switch p.Mode {
	case schema.Sentinel:
		bc = redis.NewFailoverClient(failoverOptions(p, cm))
	case schema.Standalone:
		bc = redis.NewClient(standaloneOptions(p, cm))
	default:
		return errors.New("auto-pipelining needs a standalone or sentinel profile")
	}
	outer(bc)
	bc.AddHook(c.policy.BatchHook())
	ap, err := bc.AutoPipelineWithOptions(autoPipelineOptions(p.Pipeline))
	if err != nil {
		_ = bc.Close()
		return err
	}
	c.batch, c.ap = bc, ap
	return nil
}

// autoPipelineOptions maps the pipeline block onto go-redis's options for
// the blocking face. More than one batch in flight gives up the order
// between batches, which go-redis makes explicit with Unordered; each
// caller of the blocking face waits for its command, so a caller's own
// commands stay in order either way.
func autoPipelineOptions(pl schema.Pipeline) *redis.AutoPipelineOptions {
	return &redis.AutoPipelineOptions{
		MaxBatchSize:         pl.MaxBatch,
		MaxBatchBytes:        int(pl.MaxBatchBytes),
		MaxConcurrentBatches: max(1, pl.ConcurrentBatches),
		Unordered:            pl.ConcurrentBatches > 1,
		MaxFlushDelay:        pl.FlushDelay,
	}
}

// AutoPipeliner returns the profile's auto-pipeliner, or nil when the
// profile does not set pipeline.auto. The profile's Handle already sends
// the commands it can through it.
func (c *Client) AutoPipeliner() *redis.AutoPipeliner { return c.ap }

// closeAutoPipeline closes the auto-pipeliner, which sends the commands it
// has accepted and waits for their replies, then its client.
func (c *Client) closeAutoPipeline() error {
	if c.ap == nil {
		return nil
	}
	return errors.Join(c.ap.Close(), c.batch.Close())
}
