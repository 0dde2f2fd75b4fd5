package retry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// Kind says what an [Event] reports.
type Kind uint8

// The kinds of events.
const (
	// Attempted: a try failed with an error the policy retries, and the
	// command will be tried again after Delay.
	Attempted Kind = iota + 1
	// Exhausted: a try failed with an error the policy retries, but the
	// command has used all its retries; the error goes back to the caller.
	Exhausted
	// Throttled: a try failed with an error the policy retries, but the
	// retry budget refused the retry; the error goes back to the caller.
	Throttled
)

// String returns the lower-case name of k ("attempted", "exhausted",
// "throttled").
func (k Kind) String() string {
	switch k {
	case Attempted:
		return "attempted"
	case Exhausted:
		return "exhausted"
	case Throttled:
		return "throttled"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Event reports a decision of a [Policy] about a failed try.
type Event struct {
	// Kind is what happened.
	Kind Kind
	// Command is the lower-case command name ("get", "incr"), or "pipeline"
	// for a pipeline and "multi" for a MULTI/EXEC transaction.
	Command string
	// Attempt numbers the tries of the command, the first try being 1.
	// Attempted: the number of the upcoming try (2 for the first retry).
	// Exhausted and Throttled: the number of tries made, the failed one
	// included. runtime.Event.Attempt carries the same number.
	Attempt int
	// Delay is the wait before the next try (Attempted only).
	Delay time.Duration
	// Class is the class of Err.
	Class errclass.Class
	// Err is the error of the failed try, exactly as go-redis returned it.
	Err error
	// Reason says why the budget refused the retry (Throttled only).
	Reason string
}

// Options are the injectable parts of a [Policy]. The zero value is ready
// for production use.
type Options struct {
	// Observer, when set, receives every Event. It is called synchronously
	// on the goroutine of the command, possibly from many goroutines at
	// once, and only on the failure path: it must be quick and safe for
	// concurrent use.
	Observer func(Event)
	// Rand returns uniform random numbers in [0, 1) for the jittered
	// backoff strategies. It must be safe for concurrent use. Default:
	// math/rand/v2's Float64.
	Rand func() float64
	// Sleep waits d between tries, returning early with a non-nil error
	// when ctx is done. Default: a timer that respects ctx.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Policy is the retry policy of one profile: which failed commands are
// tried again, how many times and after what wait. Build it with
// [NewPolicy] and install [Policy.Hook] on the client. A Policy is safe for
// concurrent use; its retry budget is shared by every command that passes
// through it, so build one Policy per client.
type Policy struct {
	retries       int
	classes       []errclass.Class
	nonIdempotent bool
	strategy      Strategy
	budget        *Budget
	observe       func(Event)
	rnd           func() float64
	sleep         func(context.Context, time.Duration) error
}

// NewPolicy returns the retry policy of p, an effective profile (defaults
// merged, validated). NewPolicy copies what it needs: later changes to p do
// not affect the Policy. A nil p gives a Policy that never retries.
func NewPolicy(p *schema.Profile, opts Options) *Policy {
	pol := &Policy{
		observe: opts.Observer,
		rnd:     opts.Rand,
		sleep:   opts.Sleep,
	}
	if pol.rnd == nil {
		pol.rnd = rand.Float64
	}
	if pol.sleep == nil {
		pol.sleep = runtime.RealClock().Sleep
	}
	if p == nil {
		return pol
	}
	pol.retries = max(0, p.Retry.Retries)
	pol.nonIdempotent = p.Retry.NonIdempotent
	pol.strategy = NewStrategy(p.Retry.Backoff)
	pol.budget = NewBudget(p.Retry.Budget)
	for _, c := range p.RetryClasses() {
		// A missing key, a WATCH conflict, a canceled context or a closed
		// client never get better by trying again.
		if c.Retryable() && c != errclass.Watch && !slices.Contains(pol.classes, c) {
			pol.classes = append(pol.classes, c)
		}
	}
	return pol
}

// Retries returns how many times a failed command may be tried again after
// its first try.
func (p *Policy) Retries() int { return p.retries }

// Classes returns the error classes the policy retries.
func (p *Policy) Classes() []errclass.Class { return slices.Clone(p.classes) }

// Strategy returns the backoff strategy of the policy.
func (p *Policy) Strategy() Strategy { return p.strategy }

// Budget returns the retry budget of the policy, or nil when the profile
// has none. Its Tokens method is meant for metrics.
func (p *Policy) Budget() *Budget { return p.budget }

// eligible reports whether err, from a try of a command run under ctx, is
// one the policy retries: its class is listed, and ctx is still live. It
// says nothing yet about whether the command may be repeated.
func (p *Policy) eligible(ctx context.Context, err error) (errclass.Class, bool) {
	if err == nil || err == redis.Nil {
		return errclass.None, false
	}
	c := errclass.Of(err)
	if !slices.Contains(p.classes, c) {
		return c, false
	}
	return c, ctx.Err() == nil
}

// admit decides, for an eligible error of a command that may be repeated,
// whether failure number failure is retried, publishes the event and
// returns the wait before the next try. prev is the command's previous wait
// and is updated.
func (p *Policy) admit(failure int, prev *time.Duration, command string, class errclass.Class, err error) (time.Duration, bool) {
	// As in gRPC's retry throttling, every failure that would be retried
	// costs a token, including the last one.
	allowed := p.budget.Failure()
	if failure > p.retries {
		p.publish(Event{Kind: Exhausted, Command: command, Attempt: failure, Class: class, Err: err})
		return 0, false
	}
	if !allowed {
		p.publish(Event{Kind: Throttled, Command: command, Attempt: failure, Class: class, Err: err,
			Reason: fmt.Sprintf("retry budget exhausted: %.3f of %g tokens left, retries need more than %g",
				p.budget.Tokens(), p.budget.MaxTokens(), p.budget.MaxTokens()/2)})
		return 0, false
	}
	d := p.strategy.Delay(failure, *prev, p.rnd())
	*prev = d
	p.publish(Event{Kind: Attempted, Command: command, Attempt: failure + 1, Delay: d, Class: class, Err: err})
	return d, true
}

func (p *Policy) publish(e Event) {
	if p.observe != nil {
		p.observe(e)
	}
}

// refused reports whether err is a reply by which the server refused the
// command cmd, so that the command did not run. Every server error reply
// counts, except a generic error from a script or function (EVAL, EVALSHA,
// FCALL), which may have failed halfway through its writes.
func refused(cmd redis.Cmder, err error) bool {
	if !errclass.IsServerReply(err) {
		return false
	}
	if errclass.Of(err) == errclass.Response {
		switch cmd.Name() {
		case "eval", "evalsha", "fcall":
			return false
		}
	}
	return true
}

// mayRepeat reports whether cmd, whose last try failed with err, may be sent
// again under the non-idempotent rule.
func (p *Policy) mayRepeat(cmd redis.Cmder, err error) bool {
	if errclass.NotSent(err) {
		return true
	}
	if cmd.NoRetry() {
		// go-redis marks commands that stream their reply into a writer:
		// a repeat cannot undo what the first try wrote.
		return false
	}
	return p.nonIdempotent || IsIdempotent(cmd.Args()) || refused(cmd, err)
}

// mayRepeatAll reports whether the commands of a pipeline (tx: of a
// MULTI/EXEC transaction, cmds including MULTI and EXEC), whose first
// failure was err, may all be sent again.
func (p *Policy) mayRepeatAll(cmds []redis.Cmder, err error, tx bool) bool {
	if errclass.NotSent(err) {
		return true // one connection carries the whole pipeline: none of it left
	}
	for _, c := range cmds {
		if c.NoRetry() {
			return false
		}
	}
	if p.nonIdempotent {
		return true
	}
	body := cmds
	if tx {
		body = cmds[1 : len(cmds)-1]
	}
	for _, c := range body {
		if IsIdempotent(c.Args()) {
			continue
		}
		if !tx {
			// In a plain pipeline every command has its own reply: one the
			// server refused, or one that never went out, did not run.
			if ce := c.Err(); ce != nil && ce != redis.Nil && (errclass.NotSent(ce) || refused(c, ce)) {
				continue
			}
		}
		return false
	}
	return true
}
