package redistest

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// ClusterSlots is the number of hash slots of a Redis Cluster.
const ClusterSlots = 16384

// clusterNodeTimeout is cluster-node-timeout in milliseconds: small enough
// that failure detection and recovery take seconds, large enough not to
// flap on a loaded CI machine.
const clusterNodeTimeout = 2000

// Cluster is a Redis Cluster of masters without replicas, owned by a test.
type Cluster struct {
	nodes  []*Server
	ranges [][2]int // initial slot range of each node
}

// StartCluster starts masters cluster-enabled redis-server nodes (3 is
// typical), splits the 16384 slots evenly among them (CLUSTER
// ADDSLOTSRANGE), joins them with CLUSTER MEET and waits until every node
// reports cluster_state:ok and all nodes agree on the slot map (see
// [Cluster.WaitReady]). Each node keeps its nodes.conf in its own directory,
// so Kill followed by Restart brings a node back into the cluster.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 1 {
		t.Fatalf("redistest: StartCluster needs at least one master, got %d", masters)
	}
	c := &Cluster{}
	for i := 0; i < masters; i++ {
		s := newServer(t, fmt.Sprintf("cluster-node-%d", i), Options{})
		ports, err := freePorts(2)
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.port, s.busPort = ports[0], ports[1]
		s.roleArgs = func() []string {
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
				"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
				"--cluster-port", strconv.Itoa(s.busPort),
			}
		}
		s.start(t)
		lo := i * ClusterSlots / masters
		hi := (i+1)*ClusterSlots/masters - 1
		c.nodes = append(c.nodes, s)
		c.ranges = append(c.ranges, [2]int{lo, hi})
	}

	ctx := context.Background()
	for i, n := range c.nodes {
		if err := n.admin().Do(ctx, "CLUSTER", "ADDSLOTSRANGE", c.ranges[i][0], c.ranges[i][1]).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE on %s: %v", n.Addr(), err)
		}
	}
	first := c.nodes[0].admin()
	for _, n := range c.nodes[1:] {
		n.mu.Lock()
		port, bus := n.port, n.busPort
		n.mu.Unlock()
		if err := first.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", port, bus).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER MEET %d: %v", port, err)
		}
	}
	c.WaitReady(t)
	return c
}

// Nodes returns the cluster's nodes, in slot order (node i owns the i-th
// slot range initially).
func (c *Cluster) Nodes() []*Server { return append([]*Server(nil), c.nodes...) }

// Addrs returns the addresses ("127.0.0.1:port") of all nodes.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// ClusterOptions returns fresh go-redis cluster options seeded with all node
// addresses. Callers may modify the result.
func (c *Cluster) ClusterOptions() *redis.ClusterOptions {
	return &redis.ClusterOptions{Addrs: c.Addrs()}
}

// Client returns a go-redis cluster client (see [Cluster.ClusterOptions]);
// it is closed when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cc := redis.NewClusterClient(c.ClusterOptions())
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// NodeForKey returns the node currently serving key's hash slot, as reported
// by CLUSTER SLOTS of the first node that answers; it falls back to the
// initial slot assignment when no node answers.
func (c *Cluster) NodeForKey(key string) *Server {
	slot := KeySlot(key)
	ctx := context.Background()
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		slots, err := n.admin().ClusterSlots(ctx).Result()
		if err != nil {
			continue
		}
		for _, r := range slots {
			if slot < int(r.Start) || slot > int(r.End) || len(r.Nodes) == 0 {
				continue
			}
			for _, cand := range c.nodes {
				if cand.Addr() == r.Nodes[0].Addr {
					return cand
				}
			}
		}
	}
	for i, r := range c.ranges {
		if slot >= r[0] && slot <= r[1] {
			return c.nodes[i]
		}
	}
	return nil
}

// WaitReady waits (up to 30s) until every node reports cluster_state:ok,
// knows all nodes, sees no node as failing or in handshake, and all nodes
// report the same complete slot map. Use it after killing and restarting
// nodes. Failures are reported with t.Fatal.
func (c *Cluster) WaitReady(t testing.TB) {
	t.Helper()
	if err := waitFor(context.Background(), stableTimeout, c.checkStable); err != nil {
		t.Fatalf("redistest: cluster %v not ready: %v", c.Addrs(), err)
	}
}

func (c *Cluster) checkStable(ctx context.Context) error {
	var ref string
	for _, n := range c.nodes {
		cl := n.admin()
		info, err := cl.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", n.Addr(), err)
		}
		m := parseInfo(info)
		if m["cluster_state"] != "ok" {
			return fmt.Errorf("%s: cluster_state:%s", n.Addr(), m["cluster_state"])
		}
		if m["cluster_known_nodes"] != strconv.Itoa(len(c.nodes)) {
			return fmt.Errorf("%s: cluster_known_nodes:%s", n.Addr(), m["cluster_known_nodes"])
		}
		if m["cluster_slots_assigned"] != strconv.Itoa(ClusterSlots) {
			return fmt.Errorf("%s: cluster_slots_assigned:%s", n.Addr(), m["cluster_slots_assigned"])
		}
		nodes, err := cl.ClusterNodes(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER NODES: %w", n.Addr(), err)
		}
		for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
			f := strings.Fields(line)
			if len(f) < 8 {
				continue
			}
			if strings.Contains(f[2], "fail") || strings.Contains(f[2], "handshake") || strings.Contains(f[2], "noaddr") || f[7] != "connected" {
				return fmt.Errorf("%s sees node %s as %s/%s", n.Addr(), f[1], f[2], f[7])
			}
		}
		slots, err := cl.ClusterSlots(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER SLOTS: %w", n.Addr(), err)
		}
		sig := slotSignature(slots)
		if ref == "" {
			ref = sig
		} else if sig != ref {
			return fmt.Errorf("nodes disagree on slots: %q vs %q (%s)", ref, sig, n.Addr())
		}
	}
	return nil
}

func slotSignature(slots []redis.ClusterSlot) string {
	parts := make([]string, 0, len(slots))
	for _, s := range slots {
		owner := "?"
		if len(s.Nodes) > 0 {
			owner = s.Nodes[0].Addr
		}
		parts = append(parts, fmt.Sprintf("%05d-%05d@%s", s.Start, s.End, owner))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// KeySlot returns the cluster hash slot of key (CRC16 of the key or of its
// {hash tag}, modulo 16384), like CLUSTER KEYSLOT.
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % ClusterSlots)
}

// crc16 is CRC-16/XMODEM as used by Redis Cluster.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
