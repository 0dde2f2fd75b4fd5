package retry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/retry"
	"github.com/redisfactory/redisfactory/schema"
)

// replyErr is a server error reply, as go-redis's own reply errors are.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var (
	errLoading   error = replyErr("LOADING Redis is loading the dataset in memory")
	errBusy      error = replyErr("BUSY Redis is busy running a script")
	errScript    error = replyErr("ERR Error running script (call to f_1): @user_script:1: oops")
	errWrongType error = replyErr("WRONGTYPE Operation against a key holding the wrong kind of value")
	errReadTO    error = &net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}
	errDial      error = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	errEOF             = io.EOF
)

// recorder collects events and the waits a policy asked for.
type recorder struct {
	mu     sync.Mutex
	events []retry.Event
	sleeps []time.Duration
}

func (r *recorder) observe(e retry.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sleeps = append(r.sleeps, d)
	return ctx.Err()
}

func (r *recorder) kinds() []retry.Kind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []retry.Kind
	for _, e := range r.events {
		out = append(out, e.Kind)
	}
	return out
}

func (r *recorder) options() retry.Options {
	return retry.Options{Observer: r.observe, Sleep: r.sleep, Rand: func() float64 { return 0.5 }}
}

// profile returns a standalone profile with 3 retries and exponential
// backoff (10ms base, 1s cap), changed by edit.
func profile(edit func(*schema.Retry)) *schema.Profile {
	p := &schema.Profile{Mode: schema.Standalone, Retry: schema.Retry{
		Retries: 3,
		Backoff: schema.Backoff{Strategy: schema.BackoffExponential, Base: 10 * time.Millisecond, Cap: time.Second},
	}}
	if edit != nil {
		edit(&p.Retry)
	}
	return p
}

// scripted returns a ProcessHook whose tries fail with errs in turn (nil:
// success) and the count of tries.
func scripted(errs ...error) (redis.ProcessHook, *int) {
	n := new(int)
	return func(ctx context.Context, cmd redis.Cmder) error {
		i := *n
		*n++
		if i < len(errs) {
			cmd.SetErr(errs[i]) // what an inner layer may do
			return errs[i]
		}
		return nil
	}, n
}

func TestProcessDecisions(t *testing.T) {
	A, E, T := retry.Attempted, retry.Exhausted, retry.Throttled
	tests := []struct {
		name      string
		edit      func(*schema.Retry)
		args      []any
		errs      []error
		wantTries int
		wantErr   error // nil: success
		wantKinds []retry.Kind
	}{
		{"success", nil, []any{"incr", "k"}, nil, 1, nil, nil},
		{"nil reply is not retried", nil, []any{"get", "k"}, []error{redis.Nil}, 1, redis.Nil, nil},
		{"read timeout of a read is retried", nil, []any{"get", "k"}, []error{errReadTO}, 2, nil, []retry.Kind{A}},
		{"read timeout of INCR is not retried", nil, []any{"incr", "k"}, []error{errReadTO}, 1, errReadTO, nil},
		{"connection lost under INCR is not retried", nil, []any{"incr", "k"}, []error{errEOF}, 1, errEOF, nil},
		{"read timeout of INCR with non_idempotent", func(r *schema.Retry) { r.NonIdempotent = true },
			[]any{"incr", "k"}, []error{errReadTO}, 2, nil, []retry.Kind{A}},
		{"dial failure of INCR is retried", nil, []any{"incr", "k"}, []error{errDial, errDial}, 3, nil, []retry.Kind{A, A}},
		{"pool timeout is retried when listed", func(r *schema.Retry) { r.AlsoOn = []errclass.Class{errclass.PoolTimeout} },
			[]any{"incr", "k"}, []error{redis.ErrPoolTimeout}, 2, nil, []retry.Kind{A}},
		{"pool timeout is not retried by default", nil, []any{"get", "k"}, []error{redis.ErrPoolTimeout}, 1, redis.ErrPoolTimeout, nil},
		{"LOADING is not retried by default", nil, []any{"incr", "k"}, []error{errLoading}, 1, errLoading, nil},
		{"LOADING of INCR is retried when listed", func(r *schema.Retry) { r.AlsoOn = []errclass.Class{errclass.BusyLoading} },
			[]any{"incr", "k"}, []error{errLoading, errLoading}, 3, nil, []retry.Kind{A, A}},
		{"on replaces the default list", func(r *schema.Retry) { r.On = []errclass.Class{errclass.BusyLoading} },
			[]any{"get", "k"}, []error{errReadTO}, 1, errReadTO, nil},
		{"BUSY of EVAL is retried when listed", func(r *schema.Retry) { r.On = []errclass.Class{errclass.Busy} },
			[]any{"eval", "return 1", 0}, []error{errBusy}, 2, nil, []retry.Kind{A}},
		{"script error of EVAL is never repeated", func(r *schema.Retry) { r.On = []errclass.Class{errclass.Response} },
			[]any{"eval", "return 1", 0}, []error{errScript}, 1, errScript, nil},
		{"WRONGTYPE refused the command", func(r *schema.Retry) { r.On = []errclass.Class{errclass.WrongType} },
			[]any{"lpush", "k", "v"}, []error{errWrongType}, 2, nil, []retry.Kind{A}},
		{"TxFailedErr is never retried", func(r *schema.Retry) { r.On = []errclass.Class{errclass.Watch} },
			[]any{"exec"}, []error{redis.TxFailedErr}, 1, redis.TxFailedErr, nil},
		{"exhausted", nil, []any{"get", "k"}, []error{errEOF, errEOF, errEOF, errReadTO}, 4, errReadTO, []retry.Kind{A, A, A, E}},
		{"retries 0", func(r *schema.Retry) { r.Retries = 0 }, []any{"get", "k"}, []error{errEOF}, 1, errEOF, []retry.Kind{E}},
		{"budget throttles", func(r *schema.Retry) { r.Budget = schema.Budget{MaxTokens: 4, TokenRatio: 0.1} },
			[]any{"get", "k"}, []error{errEOF, errEOF, errEOF}, 2, errEOF, []retry.Kind{A, T}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec recorder
			pol := retry.NewPolicy(profile(tt.edit), rec.options())
			next, tries := scripted(tt.errs...)
			cmd := redis.NewCmd(context.Background(), tt.args...)
			err := pol.Hook().ProcessHook(next)(context.Background(), cmd)
			assert.Equal(t, tt.wantTries, *tries, "tries")
			if tt.wantErr == nil {
				assert.NoError(t, err)
				assert.NoError(t, cmd.Err(), "the error of a failed try is cleared")
			} else {
				assert.True(t, err == tt.wantErr, "the original error, unwrapped: got %v", err)
			}
			assert.Equal(t, tt.wantKinds, rec.kinds())
			assert.Len(t, rec.sleeps, countKind(rec.kinds(), retry.Attempted))
		})
	}
}

func countKind(ks []retry.Kind, k retry.Kind) int {
	n := 0
	for _, x := range ks {
		if x == k {
			n++
		}
	}
	return n
}

func TestProcessEvents(t *testing.T) {
	var rec recorder
	pol := retry.NewPolicy(profile(func(r *schema.Retry) { r.Retries = 2 }), rec.options())
	next, _ := scripted(errEOF, errReadTO, errDial)
	err := pol.Hook().ProcessHook(next)(context.Background(), redis.NewStringCmd(context.Background(), "GET", "k"))
	require.True(t, err == errDial)
	require.Equal(t, []retry.Event{
		{Kind: retry.Attempted, Command: "get", Attempt: 2, Delay: 20 * time.Millisecond, Class: errclass.Connection, Err: errEOF},
		{Kind: retry.Attempted, Command: "get", Attempt: 3, Delay: 40 * time.Millisecond, Class: errclass.Timeout, Err: errReadTO},
		{Kind: retry.Exhausted, Command: "get", Attempt: 3, Class: errclass.Connection, Err: errDial},
	}, rec.events)
}

func TestProcessThrottledEvent(t *testing.T) {
	var rec recorder
	pol := retry.NewPolicy(profile(func(r *schema.Retry) { r.Budget = schema.Budget{MaxTokens: 2, TokenRatio: 1} }), rec.options())
	next, tries := scripted(errEOF)
	err := pol.Hook().ProcessHook(next)(context.Background(), redis.NewStringCmd(context.Background(), "get", "k"))
	require.True(t, err == errEOF)
	require.Equal(t, 1, *tries)
	require.Len(t, rec.events, 1)
	e := rec.events[0]
	assert.Equal(t, retry.Throttled, e.Kind)
	assert.Equal(t, "throttled", e.Kind.String())
	assert.True(t, e.Err == errEOF)
	assert.Contains(t, e.Reason, "retry budget exhausted")
	// A success gives the token back and retries are allowed again.
	ok, _ := scripted()
	require.NoError(t, pol.Hook().ProcessHook(ok)(context.Background(), redis.NewStringCmd(context.Background(), "get", "k")))
	assert.Equal(t, 2.0, pol.Budget().Tokens())
}

func TestProcessContext(t *testing.T) {
	t.Run("done before the decision", func(t *testing.T) {
		var rec recorder
		pol := retry.NewPolicy(profile(nil), rec.options())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		next, tries := scripted(errEOF)
		err := pol.Hook().ProcessHook(next)(ctx, redis.NewStringCmd(ctx, "get", "k"))
		assert.True(t, err == errEOF)
		assert.Equal(t, 1, *tries)
		assert.Empty(t, rec.events)
	})
	t.Run("done during the wait", func(t *testing.T) {
		pol := retry.NewPolicy(profile(func(r *schema.Retry) { r.Backoff.Strategy = schema.BackoffConstant; r.Backoff.Base = time.Hour }), retry.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		next, tries := scripted(errEOF)
		start := time.Now()
		err := pol.Hook().ProcessHook(next)(ctx, redis.NewStringCmd(ctx, "get", "k"))
		assert.True(t, err == errEOF, "the command's error, not the context's")
		assert.Equal(t, 1, *tries)
		assert.Less(t, time.Since(start), 10*time.Second)
	})
}

func TestNewPolicy(t *testing.T) {
	pol := retry.NewPolicy(profile(func(r *schema.Retry) {
		r.On = []errclass.Class{errclass.Timeout, errclass.Watch, errclass.Nil}
		r.AlsoOn = []errclass.Class{errclass.BusyLoading, errclass.Timeout}
	}), retry.Options{})
	assert.Equal(t, 3, pol.Retries())
	assert.Equal(t, []errclass.Class{errclass.Timeout, errclass.BusyLoading}, pol.Classes())
	assert.Equal(t, schema.BackoffExponential, pol.Strategy().Kind())
	assert.Nil(t, pol.Budget())

	cl := retry.NewPolicy(&schema.Profile{Mode: schema.Cluster}, retry.Options{})
	assert.Equal(t, []errclass.Class{errclass.Connection, errclass.Timeout, errclass.ClusterDown}, cl.Classes())

	none := retry.NewPolicy(nil, retry.Options{})
	next, tries := scripted(errEOF)
	assert.True(t, none.Hook().ProcessHook(next)(context.Background(), redis.NewStringCmd(context.Background(), "get", "k")) == errEOF)
	assert.Equal(t, 1, *tries)
}

func TestKindString(t *testing.T) {
	assert.Equal(t, "attempted", retry.Attempted.String())
	assert.Equal(t, "exhausted", retry.Exhausted.String())
	assert.Equal(t, "Kind(9)", retry.Kind(9).String())
}

func TestDialHookPassesThrough(t *testing.T) {
	pol := retry.NewPolicy(profile(nil), retry.Options{})
	calls := 0
	d := pol.Hook().DialHook(func(ctx context.Context, network, addr string) (net.Conn, error) {
		calls++
		return nil, errDial
	})
	_, err := d(context.Background(), "tcp", "x:1")
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED))
	assert.Equal(t, 1, calls)
}

// pipelineNext returns a ProcessPipelineHook whose runs stamp errs[i] (a
// function of the commands) and the count of runs.
func pipelineNext(runs ...func(cmds []redis.Cmder) error) (redis.ProcessPipelineHook, *int) {
	n := new(int)
	return func(ctx context.Context, cmds []redis.Cmder) error {
		i := *n
		*n++
		if i < len(runs) {
			return runs[i](cmds)
		}
		for _, c := range cmds {
			if c.Err() != nil {
				return errors.New("test: a command was not reset: " + c.Err().Error())
			}
		}
		return nil
	}, n
}

// stampAll fails every command with err, as go-redis does for a transport
// error.
func stampAll(err error) func([]redis.Cmder) error {
	return func(cmds []redis.Cmder) error {
		for _, c := range cmds {
			c.SetErr(err)
		}
		return err
	}
}

// stampEach gives each command its own error (nil: success).
func stampEach(errs ...error) func([]redis.Cmder) error {
	return func(cmds []redis.Cmder) error {
		var first error
		for i, c := range cmds {
			c.SetErr(errs[i])
			if first == nil && errs[i] != nil {
				first = errs[i]
			}
		}
		return first
	}
}

func cmds(args ...[]any) []redis.Cmder {
	out := make([]redis.Cmder, len(args))
	for i, a := range args {
		out[i] = redis.NewCmd(context.Background(), a...)
	}
	return out
}

func TestPipelineDecisions(t *testing.T) {
	loading := func(r *schema.Retry) { r.AlsoOn = []errclass.Class{errclass.BusyLoading} }
	multi, exec := []any{"multi"}, []any{"exec"}
	get, set, incr := []any{"get", "k"}, []any{"set", "k", "v"}, []any{"incr", "n"}
	tests := []struct {
		name      string
		edit      func(*schema.Retry)
		cmds      []redis.Cmder
		runs      []func([]redis.Cmder) error
		wantRuns  int
		wantKinds []retry.Kind
		wantCmd   string
	}{
		{"success", nil, cmds(get, incr), nil, 1, nil, ""},
		{"only nil replies", nil, cmds(get, get), []func([]redis.Cmder) error{stampEach(redis.Nil, redis.Nil)}, 1, nil, ""},
		{"idempotent pipeline after a timeout", nil, cmds(get, set), []func([]redis.Cmder) error{stampAll(errReadTO)}, 2, []retry.Kind{retry.Attempted}, "pipeline"},
		{"INCR in a pipeline after a timeout", nil, cmds(get, incr), []func([]redis.Cmder) error{stampAll(errReadTO)}, 1, nil, ""},
		{"INCR in a pipeline, non_idempotent", func(r *schema.Retry) { r.NonIdempotent = true },
			cmds(get, incr), []func([]redis.Cmder) error{stampAll(errReadTO)}, 2, []retry.Kind{retry.Attempted}, "pipeline"},
		{"INCR in a pipeline after a dial failure", nil, cmds(get, incr), []func([]redis.Cmder) error{stampAll(errDial)}, 2, []retry.Kind{retry.Attempted}, "pipeline"},
		{"LOADING refused every command", loading, cmds(incr, incr),
			[]func([]redis.Cmder) error{stampEach(errLoading, errLoading)}, 2, []retry.Kind{retry.Attempted}, "pipeline"},
		{"an INCR that ran is not repeated", loading, cmds(incr, get),
			[]func([]redis.Cmder) error{stampEach(nil, errLoading)}, 1, nil, ""},
		{"the first failure decides, after a nil reply", loading, cmds(get, set),
			[]func([]redis.Cmder) error{stampEach(redis.Nil, errLoading)}, 2, []retry.Kind{retry.Attempted}, "pipeline"},
		{"idempotent transaction after a timeout", nil, cmds(multi, get, set, exec),
			[]func([]redis.Cmder) error{stampAll(errReadTO)}, 2, []retry.Kind{retry.Attempted}, "multi"},
		{"transaction with INCR after a timeout", nil, cmds(multi, get, incr, exec),
			[]func([]redis.Cmder) error{stampAll(errReadTO)}, 1, nil, ""},
		{"transaction with INCR, LOADING", loading, cmds(multi, incr, exec),
			[]func([]redis.Cmder) error{stampAll(errLoading)}, 1, nil, ""},
		{"transaction with INCR after a dial failure", nil, cmds(multi, incr, exec),
			[]func([]redis.Cmder) error{stampAll(errDial)}, 2, []retry.Kind{retry.Attempted}, "multi"},
		{"WATCH conflict", func(r *schema.Retry) { r.On = []errclass.Class{errclass.Watch} }, cmds(multi, get, exec),
			[]func([]redis.Cmder) error{func([]redis.Cmder) error { return redis.TxFailedErr }}, 1, nil, ""},
		{"exhausted", func(r *schema.Retry) { r.Retries = 1 }, cmds(get),
			[]func([]redis.Cmder) error{stampAll(errEOF), stampAll(errEOF)}, 2, []retry.Kind{retry.Attempted, retry.Exhausted}, "pipeline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec recorder
			pol := retry.NewPolicy(profile(tt.edit), rec.options())
			next, runs := pipelineNext(tt.runs...)
			err := pol.Hook().ProcessPipelineHook(next)(context.Background(), tt.cmds)
			assert.Equal(t, tt.wantRuns, *runs, "runs")
			assert.Equal(t, tt.wantKinds, rec.kinds())
			if len(rec.events) > 0 {
				assert.Equal(t, tt.wantCmd, rec.events[0].Command)
			}
			if len(tt.wantKinds) > 0 && tt.wantKinds[len(tt.wantKinds)-1] == retry.Attempted {
				assert.NoError(t, err)
			}
		})
	}
}
