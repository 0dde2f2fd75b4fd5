package fastcmd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cmdMakers build a fresh command of every supported type, as the factory's
// callers would.
var cmdMakers = []struct {
	name string
	new  func() redis.Cmder
}{
	{"StringCmd", func() redis.Cmder { return redis.NewStringCmd(context.Background(), "get", "k") }},
	{"StatusCmd", func() redis.Cmder { return redis.NewStatusCmd(context.Background(), "set", "k", "v") }},
	{"IntCmd", func() redis.Cmder { return redis.NewIntCmd(context.Background(), "incr", "k") }},
	{"BoolCmd", func() redis.Cmder { return redis.NewBoolCmd(context.Background(), "setnx", "k", "v") }},
	{"FloatCmd", func() redis.Cmder { return redis.NewFloatCmd(context.Background(), "incrbyfloat", "k", 1.5) }},
}

var bulk64 = strings.Repeat("0123456789abcdef", 4)

// parityFrames are complete single-reply frames; for every one of them and
// every command type SetReply must agree with go-redis.
var parityFrames = []string{
	// bulk strings
	"$3\r\nfoo\r\n", "$0\r\n\r\n", "$4\r\na\r\nb\r\n", "$64\r\n" + bulk64 + "\r\n",
	"$2\r\n42\r\n", "$3\r\n-42\r\n", "$4\r\n3.14\r\n", "$2\r\nOK\r\n", "$4\r\ntrue\r\n", "$1\r\n1\r\n",
	"$20\r\n18446744073709551615\r\n", "$3\r\ninf\r\n", "$3\r\nNaN\r\n",
	"$+3\r\nfoo\r\n", "$03\r\nfoo\r\n", "$3\r\nfooXY", "$3\r\nfoo\n\n",
	// simple strings
	"+OK\r\n", "+\r\n", "+hello world\r\n", "+a\rb\r\n", "+42\r\n", "+-42\r\n", "+1\r\n", "+true\r\n", "+2.5\r\n", "+QUEUED\r\n",
	// nulls
	"$-1\r\n", "_\r\n", "_x\r\n", "$-01\r\n", "*-1\r\n", "!-1\r\n", "=-1\r\n", "%-1\r\n",
	// integers
	":42\r\n", ":-7\r\n", ":0\r\n", ":+5\r\n", ":007\r\n", ":9223372036854775807\r\n", ":-9223372036854775808\r\n",
	":9223372036854775808\r\n", ":abc\r\n", ":\r\n", ":1.5\r\n", ":1\r\n",
	// error replies
	"-ERR unknown command 'foo'\r\n",
	"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
	"-LOADING Redis is loading the dataset in memory\r\n",
	"-READONLY You can't write against a read only replica.\r\n",
	"-MOVED 3999 1.2.3.4:6379\r\n", "-MOVED 1 1.2.3.4:6379\r\n", "-ASK 3999 1.2.3.4:6380\r\n",
	"-NOSCRIPT No matching script. Please use EVAL.\r\n",
	"-CLUSTERDOWN The cluster is down\r\n", "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
	"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
	"-NOAUTH Authentication required.\r\n", "-WRONGPASS invalid username-password pair\r\n",
	"-NOPERM this user has no permissions\r\n", "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
	"-EXECABORT Transaction discarded because of previous errors.\r\n", "-NOREPLICAS Not enough good replicas to write.\r\n",
	"-ERR max number of clients reached\r\n", "-BUSY Redis is busy running a script.\r\n", "-ERR\r\n", "-\r\n",
	"-ERR client unauthenticated\r\n",
	// RESP3 blob errors
	"!21\r\nSYNTAX invalid syntax\r\n", "!28\r\nMOVED 12 10.0.0.1:7000 extra\r\n", "!7\r\nLOADING\r\n",
	// attributes
	"|1\r\n+key\r\n+val\r\n$3\r\nfoo\r\n", "|1\r\n+k\r\n*2\r\n:1\r\n:2\r\n:5\r\n", "|-1\r\n+OK\r\n",
	"|1\r\n$1\r\na\r\n%1\r\n+x\r\n_\r\n-ERR after attribute\r\n", "|0\r\n_\r\n", "|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n:12\r\n",
	// other RESP3
	"=15\r\ntxt:Some string\r\n", "=2\r\nab\r\n", "=4\r\ntxt:\r\n",
	"#t\r\n", "#f\r\n", "#x\r\n",
	",3.14\r\n", ",inf\r\n", ",-inf\r\n", ",nan\r\n", ",-nan\r\n", ",1e500\r\n", ",10\r\n", ",abc\r\n",
	"(3492890328409238509324850943850943825024385\r\n", "(12\r\n", "(-12\r\n", "(abc\r\n",
	// aggregates
	"*2\r\n$1\r\na\r\n$1\r\nb\r\n", "*0\r\n", "*1\r\n:1\r\n", "%1\r\n+a\r\n:1\r\n", "~1\r\n:1\r\n",
	">2\r\n$7\r\nmessage\r\n$2\r\nhi\r\n", ">3\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n_\r\n",
	// garbage that is still one complete line
	"x\r\n", "?\r\n", "\r\n", "OK\r\n", "$abc\r\n", "$-2\r\n", "*abc\r\n", "*-2\r\n", "+OK\n", "$\r\n",
}

// TestSetReplyMatchesGoRedis is the parity table: the same frame is read by
// a plain go-redis client from a TCP server and set by Decoder.SetReply, and
// everything a caller can observe must agree.
func TestSetReplyMatchesGoRedis(t *testing.T) {
	srv := newScriptServer(t)
	d := NewDecoder()
	defer d.Close()
	ctx := context.Background()
	for _, protocol := range []int{2, 3} {
		for _, frame := range parityFrames {
			if protocol == 3 && frame[0] == '>' {
				// A RESP3 go-redis client consumes push frames as
				// notifications and waits for the real reply; the
				// factory hands SetReply replies, not pushes.
				continue
			}
			for _, mk := range cmdMakers {
				t.Run(fmt.Sprintf("resp%d/%s/%q", protocol, mk.name, frame), func(t *testing.T) {
					want := mk.new()
					refProcess(t, srv, protocol, want, []byte(frame))
					got := mk.new()
					ret := d.SetReply(ctx, got, []byte(frame))
					assert.Equal(t, got.Err(), ret, "SetReply returns cmd.Err()")
					assertSameResult(t, want, got)
				})
			}
		}
	}
}

// assertSameResult compares what a caller can observe of two commands.
func assertSameResult(t *testing.T, want, got redis.Cmder) {
	t.Helper()
	assert.Equal(t, cmdVal(want), cmdVal(got), "Val")
	we, ge := want.Err(), got.Err()
	assert.Equal(t, reflect.TypeOf(we), reflect.TypeOf(ge), "error type (want %v, got %v)", we, ge)
	if we == nil || ge == nil {
		assert.Equal(t, we, ge)
		return
	}
	assert.Equal(t, we.Error(), ge.Error(), "error message")
	assert.Equal(t, errors.Is(we, redis.Nil), errors.Is(ge, redis.Nil), "errors.Is(redis.Nil)")
	var wre, gre redis.Error
	assert.Equal(t, errors.As(we, &wre), errors.As(ge, &gre), "errors.As(redis.Error)")
	for _, p := range []string{"ERR", "WRONGTYPE", "LOADING", "READONLY", "MOVED", "ASK", "NOSCRIPT", "CLUSTERDOWN",
		"MASTERDOWN", "OOM", "NOAUTH", "WRONGPASS", "NOPERM", "TRYAGAIN", "EXECABORT", "NOREPLICAS", "BUSY", "SYNTAX"} {
		assert.Equal(t, redis.HasErrorPrefix(we, p), redis.HasErrorPrefix(ge, p), "HasErrorPrefix %s", p)
	}
	for name, is := range map[string]func(error) bool{
		"IsLoadingError": redis.IsLoadingError, "IsReadOnlyError": redis.IsReadOnlyError,
		"IsClusterDownError": redis.IsClusterDownError, "IsTryAgainError": redis.IsTryAgainError,
		"IsMasterDownError": redis.IsMasterDownError, "IsMaxClientsError": redis.IsMaxClientsError,
		"IsAuthError": redis.IsAuthError, "IsPermissionError": redis.IsPermissionError,
		"IsExecAbortError": redis.IsExecAbortError, "IsOOMError": redis.IsOOMError,
		"IsNoReplicasError": redis.IsNoReplicasError,
	} {
		assert.Equal(t, is(we), is(ge), name)
	}
	for name, is := range map[string]func(error) (string, bool){"IsMovedError": redis.IsMovedError, "IsAskError": redis.IsAskError} {
		wa, wok := is(we)
		ga, gok := is(ge)
		assert.Equal(t, wok, gok, name)
		assert.Equal(t, wa, ga, name+" addr")
	}
}

// cmdVal returns a comparable form of cmd's value (float bits, so NaN
// equals NaN).
func cmdVal(cmd redis.Cmder) any {
	switch c := cmd.(type) {
	case *redis.StringCmd:
		return c.Val()
	case *redis.StatusCmd:
		return c.Val()
	case *redis.IntCmd:
		return c.Val()
	case *redis.BoolCmd:
		return c.Val()
	case *redis.FloatCmd:
		return math.Float64bits(c.Val())
	}
	panic(fmt.Sprintf("unexpected %T", cmd))
}

// TestSetReplyFastPathValues pins the fast path's own results (the parity
// table checks them against go-redis; this checks they really are taken
// without go-redis, by decoding with a closed decoder, whose slow path fails).
func TestSetReplyFastPathValues(t *testing.T) {
	d := NewDecoder()
	require.NoError(t, d.Close())
	ctx := context.Background()

	s := redis.NewStringCmd(ctx, "get", "k")
	require.NoError(t, d.SetReply(ctx, s, []byte("$3\r\nfoo\r\n")))
	assert.Equal(t, "foo", s.Val())
	assert.ErrorIs(t, d.SetReply(ctx, s, []byte("$-1\r\n")), redis.Nil)
	assert.Equal(t, "", s.Val())
	assert.ErrorIs(t, d.SetReply(ctx, s, []byte("_\r\n")), redis.Nil)

	st := redis.NewStatusCmd(ctx, "set", "k", "v")
	require.NoError(t, d.SetReply(ctx, st, []byte("+OK\r\n")))
	assert.Equal(t, "OK", st.Val())

	i := redis.NewIntCmd(ctx, "incr", "k")
	require.NoError(t, d.SetReply(ctx, i, []byte(":-12\r\n")))
	assert.Equal(t, int64(-12), i.Val())

	b := redis.NewBoolCmd(ctx, "setnx", "k", "v")
	require.NoError(t, d.SetReply(ctx, b, []byte(":1\r\n")))
	assert.True(t, b.Val())
	require.NoError(t, d.SetReply(ctx, b, []byte("$-1\r\n")))
	assert.False(t, b.Val())

	f := redis.NewFloatCmd(ctx, "incrbyfloat", "k", 1)
	require.NoError(t, d.SetReply(ctx, f, []byte("$4\r\n2.75\r\n")))
	assert.Equal(t, 2.75, f.Val())
	// RESP3 doubles (ZSCORE, ZINCRBY on RESP3), go-redis's spellings
	// of infinity and NaN included.
	for frame, want := range map[string]float64{",2.75\r\n": 2.75, ",1e3\r\n": 1000, ",inf\r\n": math.Inf(1), ",-inf\r\n": math.Inf(-1)} {
		require.NoError(t, d.SetReply(ctx, f, []byte(frame)), frame)
		assert.Equal(t, want, f.Val(), frame)
	}
	for _, frame := range []string{",nan\r\n", ",-nan\r\n"} {
		require.NoError(t, d.SetReply(ctx, f, []byte(frame)), frame)
		assert.True(t, math.IsNaN(f.Val()), frame)
	}

	// An error reply is not a fast frame: with the slow path closed it
	// fails instead of being decoded.
	err := d.SetReply(ctx, s, []byte("-ERR x\r\n"))
	require.Error(t, err)
	assert.NotEqual(t, "ERR x", err.Error())
}

// TestSlowPathWritesOnlyTheCommand checks that the in-memory client sends
// nothing of its own (no HELLO, CLIENT SETINFO, SELECT...) — on the first
// call, which dials, and on later ones — only the command, encoded as
// AppendArgs encodes it.
func TestSlowPathWritesOnlyTheCommand(t *testing.T) {
	d := NewDecoder()
	defer d.Close()
	ctx := context.Background()
	frames := []string{"-ERR first\r\n", "#t\r\n", "*1\r\n:1\r\n", "-READONLY x\r\n", "=7\r\ntxt:abc\r\n"}
	for i, frame := range frames {
		cmd := redis.NewStringCmd(ctx, "get", fmt.Sprintf("key:%d", i))
		_ = d.SetReply(ctx, cmd, []byte(frame))
		want, ok := AppendArgs(nil, cmd.Args())
		require.True(t, ok)
		d.slow.mu.Lock()
		written := string(d.slow.lastWritten)
		d.slow.mu.Unlock()
		assert.Equal(t, string(want), written, "frame %q", frame)
	}
}

// TestHostileFrames feeds truncated, oversized and garbage frames: each must
// give an error (never a value), and none may panic or hang.
func TestHostileFrames(t *testing.T) {
	d := NewDecoder()
	defer d.Close()
	ctx := context.Background()
	hostile := []string{
		"", "\r", "+", "+OK", "+OK\r", "$", "$3", "$3\r\n", "$3\r\nfo", "$3\r\nfoo", "$3\r\nfoo\r",
		"$10\r\nabc\r\n", "$9223372036854775807\r\n", "$9223372036854775806\r\nx\r\n", "$99999999999999\r\nab\r\n",
		"!2147483647\r\nx\r\n", "=99999999999\r\nx\r\n",
		"*3\r\n:1\r\n", "*9223372036854775807\r\n", "|1\r\n+a\r\n", "|1\r\n+a\r\n+b\r\n",
		"|9223372036854775807\r\n+a\r\n", "%4611686018427387904\r\n", "|4611686018427387904\r\n",
		"+OK\r\n+OK\r\n", "$3\r\nfoo\r\nextra", ":1\r\n:2\r\n", "-ERR x\r\n+OK\r\n", "_\r\n_\r\n",
		strings.Repeat("|1\r\n+a\r\n+b\r\n", 1000) + "+OK\r\n",
		strings.Repeat("|1\r\n*1\r\n", 10000) + ":1\r\n+x\r\n+OK\r\n",
	}
	for _, frame := range hostile {
		for _, mk := range cmdMakers {
			cmd := mk.new()
			err := runBounded(t, func() error { return d.SetReply(ctx, cmd, []byte(frame)) })
			assert.Error(t, err, "%s %q", mk.name, truncate(frame))
			assert.Equal(t, err, cmd.Err())
			assert.ErrorIs(t, err, ErrMalformedFrame, "%s %q", mk.name, truncate(frame))
		}
	}

	// Complete lines go-redis itself rejects: its error, not ours.
	for _, frame := range []string{"\n", "$18446744073709551616\r\n", "*-5\r\n", "|x\r\n+OK\r\n"} {
		for _, mk := range cmdMakers {
			cmd := mk.new()
			err := runBounded(t, func() error { return d.SetReply(ctx, cmd, []byte(frame)) })
			assert.Error(t, err, "%s %q", mk.name, frame)
			assert.NotErrorIs(t, err, ErrMalformedFrame, "%s %q", mk.name, frame)
		}
	}

	// Every strict prefix of a valid frame is truncated.
	for _, frame := range parityFrames {
		for n := range len(frame) {
			if frame == "$3\r\nfooXY" || frame == "+OK\n" {
				continue // prefixes of these include other complete frames
			}
			cmd := redis.NewStringCmd(ctx, "get", "k")
			err := runBounded(t, func() error { return d.SetReply(ctx, cmd, []byte(frame[:n])) })
			if !assert.Error(t, err, "prefix %q of %q", frame[:n], frame) {
				continue
			}
		}
	}
}

// TestRandomFramesNeverPanic throws random bytes (biased towards RESP type
// bytes and digits) at every command type under a deadline.
func TestRandomFramesNeverPanic(t *testing.T) {
	d := NewDecoder()
	defer d.Close()
	ctx := context.Background()
	alphabet := []byte("+-:$*_,#!=(%~>|\r\n0123456789-abcOK")
	seed := uint64(0x9e3779b97f4a7c15)
	next := func() uint64 { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed }
	for i := range 20000 {
		frame := make([]byte, next()%24)
		for j := range frame {
			frame[j] = alphabet[next()%uint64(len(alphabet))]
		}
		mk := cmdMakers[i%len(cmdMakers)]
		cmd := mk.new()
		runBounded(t, func() error { return d.SetReply(ctx, cmd, frame) })
	}
}

// runBounded runs f, failing the test (instead of hanging it) after a few
// seconds and turning a panic into a test failure.
func runBounded(t *testing.T, f func() error) error {
	t.Helper()
	type result struct {
		err      error
		panicked any
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{panicked: r}
			}
		}()
		done <- result{err: f()}
	}()
	select {
	case r := <-done:
		if r.panicked != nil {
			t.Fatalf("panic: %v", r.panicked)
		}
		return r.err
	case <-time.After(10 * time.Second):
		t.Fatal("SetReply did not return")
		return nil
	}
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func TestSetReplyUnsupported(t *testing.T) {
	d := NewDecoder()
	defer d.Close()
	ctx := context.Background()
	cmd := redis.NewStringSliceCmd(ctx, "keys", "*")
	assert.False(t, Supported(cmd))
	err := d.SetReply(ctx, cmd, []byte("*0\r\n"))
	assert.ErrorIs(t, err, ErrUnsupported)
	assert.NoError(t, cmd.Err(), "an unsupported command is left untouched")

	for _, mk := range cmdMakers {
		assert.True(t, Supported(mk.new()), mk.name)
	}
	assert.False(t, Supported(redis.NewCmd(ctx, "get", "k")))
	assert.False(t, Supported(redis.NewStringCmd(ctx, "get", stringKey("k"))))
}

func TestSetReplyAllocations(t *testing.T) {
	d := NewDecoder()
	defer d.Close()
	ctx := context.Background()
	frame := []byte("$64\r\n" + bulk64 + "\r\n")
	s := redis.NewStringCmd(ctx, "get", "k")
	allocs := testing.AllocsPerRun(1000, func() { _ = d.SetReply(ctx, s, frame) })
	assert.LessOrEqual(t, allocs, 1.0, "64 B bulk into StringCmd")
	assert.Equal(t, bulk64, s.Val())

	st := redis.NewStatusCmd(ctx, "set", "k", "v")
	ok := []byte("+OK\r\n")
	allocs = testing.AllocsPerRun(1000, func() { _ = d.SetReply(ctx, st, ok) })
	assert.LessOrEqual(t, allocs, 1.0, "+OK into StatusCmd")
	assert.Equal(t, "OK", st.Val())

	i := redis.NewIntCmd(ctx, "incr", "k")
	n := []byte(":123456\r\n")
	allocs = testing.AllocsPerRun(1000, func() { _ = d.SetReply(ctx, i, n) })
	assert.Equal(t, 0.0, allocs, ":n into IntCmd")

	null := []byte("$-1\r\n")
	allocs = testing.AllocsPerRun(1000, func() { _ = d.SetReply(ctx, s, null) })
	assert.Equal(t, 0.0, allocs, "null into StringCmd")
}

// TestSetReplyConcurrent mixes fast and slow frames from 16 goroutines; run
// under -race. Every result is checked against the expected one, so a slow
// call reading another call's frame would show.
func TestSetReplyConcurrent(t *testing.T) {
	d := NewDecoder()
	defer d.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				v := fmt.Sprintf("g%d-%d", g, i)
				switch i % 4 {
				case 0: // fast bulk
					cmd := redis.NewStringCmd(ctx, "get", v)
					err := d.SetReply(ctx, cmd, []byte(fmt.Sprintf("$%d\r\n%s\r\n", len(v), v)))
					assert.NoError(t, err)
					assert.Equal(t, v, cmd.Val())
				case 1: // slow: error reply
					cmd := redis.NewStringCmd(ctx, "get", v)
					err := d.SetReply(ctx, cmd, []byte("-ERR "+v+"\r\n"))
					assert.EqualError(t, err, "ERR "+v)
				case 2: // slow: verbatim string
					cmd := redis.NewStringCmd(ctx, "get", v)
					err := d.SetReply(ctx, cmd, []byte(fmt.Sprintf("=%d\r\ntxt:%s\r\n", len(v)+4, v)))
					assert.NoError(t, err)
					assert.Equal(t, v, cmd.Val())
				case 3: // slow: a reply go-redis rejects (bad-conn path, redial)
					cmd := redis.NewIntCmd(ctx, "incr", v)
					err := d.SetReply(ctx, cmd, []byte("*1\r\n$1\r\nx\r\n"))
					assert.ErrorContains(t, err, "can't parse int reply")
				}
			}
		}()
	}
	wg.Wait()
	d.mu.Lock()
	made := len(d.all)
	d.mu.Unlock()
	assert.LessOrEqual(t, made, d.maxSlow, "in-memory clients are bounded")
	assert.Len(t, d.idle, made, "every one is idle again")
}

func BenchmarkSetReplyBulk64(b *testing.B) {
	d := NewDecoder()
	defer d.Close()
	ctx := context.Background()
	frame := []byte("$64\r\n" + bulk64 + "\r\n")
	cmd := redis.NewStringCmd(ctx, "get", "k")
	b.ReportAllocs()
	for b.Loop() {
		_ = d.SetReply(ctx, cmd, frame)
	}
}

func BenchmarkSetReplySlowError(b *testing.B) {
	d := NewDecoder()
	defer d.Close()
	ctx := context.Background()
	frame := []byte("-MOVED 1 1.2.3.4:6379\r\n")
	cmd := redis.NewStringCmd(ctx, "get", "k")
	b.ReportAllocs()
	for b.Loop() {
		_ = d.SetReply(ctx, cmd, frame)
	}
}

// BenchmarkSetReplySlowErrorParallel: error replies from concurrent
// callers (a server answering LOADING or MOVED to everyone).
func BenchmarkSetReplySlowErrorParallel(b *testing.B) {
	d := NewDecoder()
	defer d.Close()
	ctx := context.Background()
	frame := []byte("-LOADING Redis is loading the dataset in memory\r\n")
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		cmd := redis.NewStringCmd(ctx, "get", "k")
		for pb.Next() {
			_ = d.SetReply(ctx, cmd, frame)
		}
	})
}
