package factory

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/fastcmd"
	"github.com/redisfactory/redisfactory/internal/mux"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// The direct path steps aside while the handoff engine reports a
// maintenance window (the command then takes a connection, whose timeout
// the engine relaxes), and takes the command again afterwards.
func TestDirectPathStepsAsideWhileRelaxing(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	var prepared atomic.Bool
	d := mux.New(mux.Config{
		Dial: (&net.Dialer{}).DialContext,
		Prepare: func(_ context.Context, conn net.Conn) (io.Closer, error) {
			prepared.Store(true)
			return conn, nil
		},
	})
	t.Cleanup(func() { _ = d.Close() })
	conn, err := d.DialContext(context.Background(), "tcp", srv.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	redistest.Eventually(t, 10*time.Second, "the socket prepared", prepared.Load)
	// Prepare returns before the socket is listed for Do.
	redistest.Eventually(t, 10*time.Second, "the socket ready for Do", func() bool {
		err := d.Do([]byte("*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n"), time.Now().Add(10*time.Second), func([]byte) error { return nil })
		return !errors.Is(err, mux.ErrNotReady)
	})
	dec := fastcmd.NewDecoder()
	t.Cleanup(func() { _ = dec.Close() })

	var relaxing atomic.Bool
	h := &directHook{mux: d, dec: dec, read: time.Second, relaxing: func(time.Time) bool { return relaxing.Load() }}
	var ordinary atomic.Int64
	process := h.ProcessHook(func(_ context.Context, cmd redis.Cmder) error {
		ordinary.Add(1)
		cmd.SetErr(errors.New("ordinary path"))
		return cmd.Err()
	})
	ctx := context.Background()
	run := func() (redis.Cmder, int64, uint64) {
		before, direct := ordinary.Load(), d.Stats().Direct
		cmd := redis.NewStatusCmd(ctx, "set", "relax:k", "v")
		_ = process(ctx, cmd)
		return cmd, ordinary.Load() - before, d.Stats().Direct - direct
	}

	cmd, viaOrdinary, viaDirect := run()
	require.NoError(t, cmd.Err())
	assert.Equal(t, int64(0), viaOrdinary)
	assert.Equal(t, uint64(1), viaDirect)

	relaxing.Store(true)
	cmd, viaOrdinary, viaDirect = run()
	assert.EqualError(t, cmd.Err(), "ordinary path")
	assert.Equal(t, int64(1), viaOrdinary)
	assert.Equal(t, uint64(0), viaDirect)

	relaxing.Store(false)
	cmd, _, viaDirect = run()
	require.NoError(t, cmd.Err())
	assert.Equal(t, uint64(1), viaDirect)
}
