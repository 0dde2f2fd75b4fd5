package factory_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// TestCachePubSubReceiveBeforeSubscribe is go-redis's spec "PubSub should
// ReceiveMessage without a subscription" with the cache on, found by the
// conformance harness: ReceiveMessage blocks reading the PubSub connection
// before any channel is subscribed, and another goroutine subscribes. The
// cache's tracking setup used to write CLIENT TRACKING on that connection's
// first command and read the replies itself, racing go-redis's reader for
// them: the subscription's reply was stolen and ReceiveMessage hung. Plain
// go-redis delivers the message; so must the factory, for RESP2 and RESP3.
func TestCachePubSubReceiveBeforeSubscribe(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	for _, protocol := range []int{2, 3} {
		t.Run(map[int]string{2: "resp2", 3: "resp3"}[protocol], func(t *testing.T) {
			f := newFactory(t, load(t, cacheProfile, srv.Addr(), protocol, 0, ""), factory.Options{})
			h := client(t, f, "c")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// A cached read first, so the cache's invalidation connection
			// is up and the PubSub connection would be tracked.
			require.NoError(t, h.Set(ctx, "k", "v", 0).Err())
			require.NoError(t, h.Get(ctx, "k").Err())

			pubsub := h.Subscribe(ctx)
			defer pubsub.Close()
			pubsubConns := func() int { return strings.Count(admin.ClientList(ctx).Val(), "sub=0 psub=0") }
			before := pubsubConns()
			type result struct {
				payload string
				err     error
			}
			got := make(chan result, 1)
			go func() {
				msg, err := pubsub.ReceiveMessage(ctx)
				if err != nil {
					got <- result{err: err}
					return
				}
				got <- result{payload: msg.Payload}
			}()
			// ReceiveMessage dials the PubSub connection, then reads it:
			// subscribe once that connection exists.
			redistest.Eventually(t, 3*time.Second, "the PubSub connection is dialed", func() bool { return pubsubConns() > before })
			require.NoError(t, pubsub.Subscribe(ctx, "ch"))
			redistest.Eventually(t, 3*time.Second, "the subscription is active", func() bool {
				return admin.PubSubNumSub(ctx, "ch").Val()["ch"] == 1
			})
			require.NoError(t, admin.Publish(ctx, "ch", "hello").Err())
			r := <-got
			require.NoError(t, r.err)
			require.Equal(t, "hello", r.payload)
		})
	}
}
