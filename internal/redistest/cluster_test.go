package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeySlot(t *testing.T) {
	// Reference values from CLUSTER KEYSLOT and the CRC16/XMODEM check value.
	assert.Equal(t, 12739, KeySlot("123456789"))
	assert.Equal(t, 12182, KeySlot("foo"))
	assert.Equal(t, 5061, KeySlot("bar"))
	assert.Equal(t, KeySlot("user1000"), KeySlot("{user1000}.following"))
	assert.Equal(t, KeySlot("{}foo"), KeySlot("{}foo"))
	assert.Equal(t, 0, KeySlot(""))
}

func TestCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := StartCluster(t, 3)
	require.Len(t, c.Nodes(), 3)
	require.Len(t, c.Addrs(), 3)

	// Local slot computation agrees with the server.
	admin := c.Nodes()[0].Client(t)
	for _, k := range []string{"a", "foo", "{tag}x", "x{tag}", "{}x", "{x"} {
		slot, err := admin.ClusterKeySlot(ctx, k).Result()
		require.NoError(t, err)
		assert.Equal(t, int(slot), KeySlot(k), k)
	}

	// One key per master, written through a cluster client, lands there.
	keys := make(map[*Server]string)
	for i := 0; len(keys) < 3; i++ {
		k := fmt.Sprintf("key-%d", i)
		n := c.NodeForKey(k)
		require.NotNil(t, n)
		if _, ok := keys[n]; !ok {
			keys[n] = k
		}
	}
	cc := c.Client(t)
	for n, k := range keys {
		require.NoError(t, cc.Set(ctx, k, n.Addr(), 0).Err())
		v, err := n.Client(t).Get(ctx, k).Result()
		require.NoError(t, err, "key %s must live on %s", k, n.Addr())
		assert.Equal(t, n.Addr(), v)
	}

	// Kill and restart one node: it rejoins with the same identity.
	victim := c.Nodes()[1]
	id, err := victim.Client(t).Do(ctx, "CLUSTER", "MYID").Text()
	require.NoError(t, err)
	victim.Kill()
	victim.Restart(t)
	c.WaitReady(t)
	id2, err := victim.Client(t).Do(ctx, "CLUSTER", "MYID").Text()
	require.NoError(t, err)
	assert.Equal(t, id, id2)
	require.Eventually(t, func() bool {
		return cc.Set(ctx, keys[victim], "again", 0).Err() == nil
	}, 10*time.Second, 50*time.Millisecond)
	assert.Same(t, victim, c.NodeForKey(keys[victim]))
}
