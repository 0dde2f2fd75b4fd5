package retry_test

import (
	"context"
	"io"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/retry"
)

// TestBatchHookRetriesCommandByCommand: a batch whose connection broke
// after it was written (io.EOF on every command) is retried without its
// INCR, whose error stays; the GET and the SET go out again, alone,
// until they succeed; each retried command is its own event.
func TestBatchHookRetriesCommandByCommand(t *testing.T) {
	var rec recorder
	pol := retry.NewPolicy(profile(nil), rec.options())
	var sent [][]string
	next := func(_ context.Context, cmds []redis.Cmder) error {
		var names []string
		for _, c := range cmds {
			names = append(names, c.Name())
		}
		sent = append(sent, names)
		if len(sent) <= 2 { // the first run and the first retry lose their connection
			for _, c := range cmds {
				c.SetErr(io.EOF)
			}
			return io.EOF
		}
		return nil
	}
	ctx := context.Background()
	get := redis.NewStringCmd(ctx, "get", "k")
	incr := redis.NewIntCmd(ctx, "incr", "n")
	set := redis.NewStatusCmd(ctx, "set", "k", "v")
	missing := redis.NewStringCmd(ctx, "get", "none")
	cmds := []redis.Cmder{get, incr, set, missing}
	hook := pol.BatchHook().ProcessPipelineHook(next)

	err := hook(ctx, cmds)
	require.ErrorIs(t, err, io.EOF, "the batch reports its INCR's error")
	assert.Equal(t, [][]string{{"get", "incr", "set", "get"}, {"get", "set", "get"}, {"get", "set", "get"}}, sent,
		"only the commands that may be repeated went out again")
	assert.NoError(t, get.Err())
	assert.NoError(t, set.Err())
	assert.ErrorIs(t, incr.Err(), io.EOF, "the INCR may have run: never sent twice")
	var names []string
	for _, e := range rec.events {
		assert.Equal(t, retry.Attempted, e.Kind)
		names = append(names, e.Command)
	}
	assert.Equal(t, []string{"get", "set", "get", "get", "set", "get"}, names, "one event per retried command and try")
}

// TestBatchHookGivesUpPerCommand: a command whose retries are used up
// gets an exhausted event and keeps its error.
func TestBatchHookGivesUpPerCommand(t *testing.T) {
	var rec recorder
	pol := retry.NewPolicy(profile(nil), rec.options())
	runs := 0
	next := func(_ context.Context, cmds []redis.Cmder) error {
		runs++
		for _, c := range cmds {
			c.SetErr(io.EOF)
		}
		return io.EOF
	}
	ctx := context.Background()
	get := redis.NewStringCmd(ctx, "get", "k")
	err := pol.BatchHook().ProcessPipelineHook(next)(ctx, []redis.Cmder{get})
	require.ErrorIs(t, err, io.EOF)
	assert.Equal(t, 1+pol.Retries(), runs, "the first try and every retry")
	kinds := rec.kinds()
	require.NotEmpty(t, kinds)
	assert.Equal(t, retry.Exhausted, kinds[len(kinds)-1])
}
