package errclass_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// replyErr is a server error reply as go-redis returns it.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestOf(t *testing.T) {
	cases := []struct {
		err  error
		want errclass.Class
	}{
		{nil, errclass.None},
		{redis.Nil, errclass.Nil},
		{redis.TxFailedErr, errclass.Watch},
		{redis.ErrPoolTimeout, errclass.PoolTimeout},
		{redis.ErrPoolExhausted, errclass.PoolTimeout},
		{redis.ErrClosed, errclass.Closed},
		{context.Canceled, errclass.Canceled},
		{context.DeadlineExceeded, errclass.Timeout},
		{os.ErrDeadlineExceeded, errclass.Timeout},
		{&net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, errclass.Timeout},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, errclass.Connection},
		{&net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}, errclass.Connection},
		{io.EOF, errclass.Connection},
		{io.ErrUnexpectedEOF, errclass.Connection},
		{syscall.ECONNRESET, errclass.Connection},
		{syscall.EPIPE, errclass.Connection},
		{net.ErrClosed, errclass.Connection},
		{x509.UnknownAuthorityError{}, errclass.TLS},
		// A TLS alert from the server, under the dial error it fails.
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.OpError{Op: "remote error", Err: errors.New("tls: protocol version not supported")}}, errclass.TLS},
		{fmt.Errorf("hello: %w", &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}), errclass.TLS},
		{errors.New("tls: server selected unsupported protocol version 301"), errclass.TLS},
		// A handshake that timed out (a plaintext port) or hit EOF is tls
		// once a dialer says it was the handshake; a cancel stays canceled.
		{&net.OpError{Op: "dial", Net: "tcp", Err: &errclass.HandshakeError{Err: context.DeadlineExceeded}}, errclass.TLS},
		{&errclass.HandshakeError{Err: io.EOF}, errclass.TLS},
		{&errclass.HandshakeError{Err: context.Canceled}, errclass.Canceled},
		{replyErr("LOADING Redis is loading the dataset in memory"), errclass.BusyLoading},
		{replyErr("READONLY You can't write against a read only replica."), errclass.ReadOnly},
		{replyErr("ERR Error running script: @user_script:1: -READONLY You can't write against a read only replica."), errclass.ReadOnly},
		{replyErr("CLUSTERDOWN The cluster is down"), errclass.ClusterDown},
		{replyErr("TRYAGAIN Multiple keys request during rehashing of slot"), errclass.TryAgain},
		{replyErr("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), errclass.MasterDown},
		{replyErr("ERR max number of clients reached"), errclass.MaxClients},
		{replyErr("OOM command not allowed when used memory > 'maxmemory'."), errclass.OOM},
		{replyErr("NOSCRIPT No matching script. Please use EVAL."), errclass.NoScript},
		{replyErr("NOAUTH Authentication required."), errclass.Auth},
		{replyErr("WRONGPASS invalid username-password pair or user is disabled."), errclass.Auth},
		{replyErr("ERR invalid password"), errclass.Auth},
		{replyErr("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"), errclass.Auth},
		{replyErr("NOPERM this user has no permissions to run the 'flushall' command"), errclass.Permission},
		{replyErr("MOVED 3999 127.0.0.1:6381"), errclass.Redirect},
		{replyErr("ASK 3999 127.0.0.1:6381"), errclass.Redirect},
		{replyErr("CROSSSLOT Keys in request don't hash to the same slot"), errclass.CrossSlot},
		{replyErr("EXECABORT Transaction discarded because of previous errors."), errclass.ExecAbort},
		{replyErr("WRONGTYPE Operation against a key holding the wrong kind of value"), errclass.WrongType},
		{replyErr("BUSY Redis is busy running a script."), errclass.Busy},
		{replyErr("NOREPLICAS Not enough good replicas to write."), errclass.NoReplicas},
		{replyErr("ERR syntax error"), errclass.Response},
		{replyErr("ERR unknown command 'FOO'"), errclass.Response},
		{errors.New("something else"), errclass.Unknown},
	}
	for _, tc := range cases {
		name := "nil"
		if tc.err != nil {
			name = tc.err.Error()
		}
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, errclass.Of(tc.err))
			if tc.err != nil {
				wrapped := fmt.Errorf("loading the cart: %w", tc.err)
				assert.Equal(t, tc.want, errclass.Of(wrapped), "classification works through wrapping")
				assert.True(t, errclass.Is(wrapped, tc.want))
			}
		})
	}
}

func TestEveryClassIsDocumented(t *testing.T) {
	for _, c := range errclass.All() {
		assert.NotEmpty(t, c.Description(), c)
		assert.True(t, c.Known())
	}
	for _, c := range []errclass.Class{errclass.Nil, errclass.Canceled, errclass.Closed} {
		assert.False(t, c.Retryable(), c)
	}
	assert.True(t, errclass.Connection.Retryable())
}

func TestParse(t *testing.T) {
	c, err := errclass.Parse("busy_loading")
	require.NoError(t, err)
	assert.Equal(t, errclass.BusyLoading, c)
	_, err = errclass.Parse("busy_loadin")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `did you mean "busy_loading"?`)
}

func TestNotSent(t *testing.T) {
	assert.True(t, errclass.NotSent(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}))
	assert.True(t, errclass.NotSent(fmt.Errorf("x: %w", redis.ErrPoolTimeout)))
	assert.False(t, errclass.NotSent(io.EOF))
	assert.False(t, errclass.NotSent(&net.OpError{Op: "read", Err: timeoutErr{}}))
}

// TestRealServerErrors classifies what a real server and go-redis return.
func TestRealServerErrors(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Password: "pw"})
	ctx := context.Background()
	admin := srv.Client(t)
	require.NoError(t, admin.Set(ctx, "str", "v", 0).Err())

	assert.Equal(t, errclass.WrongType, errclass.Of(admin.LPush(ctx, "str", "x").Err()))
	assert.Equal(t, errclass.Nil, errclass.Of(admin.Get(ctx, "missing").Err()))
	assert.Equal(t, errclass.NoScript, errclass.Of(admin.EvalSha(ctx, "0123456789012345678901234567890123456789", nil).Err()))
	assert.Equal(t, errclass.Response, errclass.Of(admin.Do(ctx, "SET").Err()))

	noAuth := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer noAuth.Close()
	assert.Equal(t, errclass.Auth, errclass.Of(noAuth.Get(ctx, "str").Err()))
	wrong := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "nope", MaxRetries: -1})
	defer wrong.Close()
	assert.Equal(t, errclass.Auth, errclass.Of(wrong.Get(ctx, "str").Err()))

	down := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)), MaxRetries: -1, DialerRetries: 1})
	defer down.Close()
	derr := down.Get(ctx, "k").Err()
	assert.Equal(t, errclass.Connection, errclass.Of(derr), "%v", derr)
	assert.True(t, errclass.NotSent(derr))

	tx := admin.Watch(ctx, func(tx *redis.Tx) error {
		require.NoError(t, admin.Set(ctx, "w", "changed", 0).Err())
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error { return p.Set(ctx, "w", "mine", 0).Err() })
		return err
	}, "w")
	assert.True(t, errclass.IsWatch(tx))
}
