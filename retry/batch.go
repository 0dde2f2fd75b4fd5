package retry

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// BatchHook returns the hook that applies the policy on a client whose
// pipelines are auto-pipelined batches (go-redis's AutoPipeliner): the
// commands of one batch come from independent callers, each waiting for its
// own reply, so a failed batch is not one unit. Each failed command is
// judged alone, exactly as ProcessHook would judge it: only the commands
// whose error is in a retried class and that may be repeated (idempotent,
// refused by the server, or never sent) go out again, together, after the
// backoff; the others keep their error. An INCR whose reply was lost is
// therefore never sent twice, while the GETs batched with it are retried.
//
// Single commands (the ones the auto-pipeliner runs outside a batch) are
// retried as by Hook. Each retried command is an event of its own, with its
// own name, and costs its own budget token.
func (p *Policy) BatchHook() redis.Hook { return batchHook{hook{p}} }

type batchHook struct{ hook }

// ProcessPipelineHook retries the failed commands of a batch one by one.
func (h batchHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	p := h.p
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err == nil {
			p.budget.Success()
			return nil
		}
		return p.retryBatch(ctx, cmds, next, err)
	}
}

// retryBatch is the failure path of BatchHook's ProcessPipelineHook.
func (p *Policy) retryBatch(ctx context.Context, cmds []redis.Cmder, next redis.ProcessPipelineHook, err error) error {
	if allHandshake(cmds) {
		return err
	}
	pending := cmds
	prev := make([]time.Duration, len(cmds))
	idx := make([]int, len(cmds)) // position of pending[i] in cmds
	for i := range idx {
		idx[i] = i
	}
	for failure := 1; ; failure++ {
		again, againIdx := pending[:0:0], idx[:0:0]
		var wait time.Duration
		for i, c := range pending {
			ce := c.Err()
			if ce == nil || ce == redis.Nil {
				continue
			}
			class, ok := p.eligible(ctx, ce)
			if !ok || IsHandshake(c) || !p.mayRepeat(c, ce) {
				continue
			}
			d, ok := p.admit(failure, &prev[idx[i]], c.Name(), class, ce)
			if !ok {
				continue
			}
			wait = max(wait, d)
			again, againIdx = append(again, c), append(againIdx, idx[i])
		}
		if len(again) == 0 {
			return firstFailure(cmds, nil)
		}
		if p.sleep(ctx, wait) != nil {
			return firstFailure(cmds, nil)
		}
		for _, c := range again {
			c.SetErr(nil)
		}
		if next(ctx, again) == nil {
			p.budget.Success()
			return firstFailure(cmds, nil)
		}
		pending, idx = again, againIdx
	}
}
