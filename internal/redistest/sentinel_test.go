package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sn := StartSentinel(t, SentinelOptions{Sentinels: 3, Password: "pw"})
	require.Len(t, sn.SentinelAddrs(), 3)
	assert.Equal(t, "mymaster", sn.MasterName)

	old, err := sn.CurrentMasterAddr(ctx)
	require.NoError(t, err)
	assert.Equal(t, sn.Master().Addr(), old)

	c := sn.Client(t)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	oldMaster, oldReplica := sn.Master(), sn.Replica()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, sn.Failover(fctx))

	now, err := sn.CurrentMasterAddr(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, old, now)
	assert.Equal(t, oldReplica.Addr(), now)
	assert.Same(t, oldReplica, sn.Master())
	assert.Same(t, oldMaster, sn.Replica())

	role, err := sn.Master().Client(t).Do(ctx, "ROLE").Slice()
	require.NoError(t, err)
	assert.Equal(t, "master", role[0])
	role, err = sn.Replica().Client(t).Do(ctx, "ROLE").Slice()
	require.NoError(t, err)
	assert.Equal(t, "slave", role[0], "the old master now replicates")

	// The failover client follows the new master.
	require.Eventually(t, func() bool {
		return c.Set(ctx, "k2", "v2", 0).Err() == nil
	}, 10*time.Second, 50*time.Millisecond)
	v, err := sn.Master().Client(t).Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "v", v, "replicated data survives the failover")
}

func TestSentinelSingle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sn := StartSentinel(t, SentinelOptions{MasterName: "other"})
	require.Len(t, sn.Sentinels(), 1)
	addr, err := sn.CurrentMasterAddr(ctx)
	require.NoError(t, err)
	assert.Equal(t, sn.Master().Addr(), addr)
	require.NoError(t, sn.Client(t).Ping(ctx).Err())
	require.NoError(t, sn.Failover(ctx))
	addr2, err := sn.CurrentMasterAddr(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, addr, addr2)

	// Back-to-back failovers work: the old master was turned into a replica.
	require.NoError(t, sn.Failover(ctx))
	addr3, err := sn.CurrentMasterAddr(ctx)
	require.NoError(t, err)
	assert.Equal(t, addr, addr3)
	assert.Equal(t, addr, sn.Master().Addr())
}
