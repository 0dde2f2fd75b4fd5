// Package cache is redisfactory's server-assisted client-side cache (Redis
// CLIENT TRACKING) for go-redis v9 clients of every mode — standalone,
// sentinel and cluster — and any database.
//
// # Mechanism, and why
//
// Every data connection of the client is put in tracking mode with
// CLIENT TRACKING ON REDIRECT <id> (plus BCAST PREFIX … in broadcast mode),
// where <id> is a dedicated invalidation connection the cache holds to the
// same server (one per node in a cluster) and that is subscribed to
// __redis__:invalidate. The cache reads that connection all the time on its
// own goroutine, so an invalidation is applied the moment the server sends
// it.
//
// In-band tracking (pushes on the data connections themselves, as rueidis
// and go-redis's own cache do) was rejected: go-redis only reads a pooled
// connection while a command uses it, so a push on an idle connection waits
// until that connection is used again (go-redis sweeps idle connections
// every 5 ms for this). A redirect connection works on RESP2 and RESP3
// alike, in every database (tracking is by key name, across databases, so a
// write to "k" in db 0 also drops our "k" of db 3: conservative, never
// stale), and needs no change to go-redis.
//
// Tracking is set up by a net.Conn wrapper installed by the cache's dial
// hook: before the first command after go-redis's handshake, and again
// whenever the node's invalidation connection has been replaced, the
// wrapper writes CLIENT TRACKING OFF / CLIENT TRACKING ON REDIRECT <new id>
// and reads the replies itself, so no pooled connection ever keeps
// redirecting to a dead invalidation connection (Redis would silently drop
// those invalidations on RESP2; on RESP3 it sends tracking-redir-broken).
//
// NOLOOP is not used: with it the server would not tell a connection about
// its own writes, and correctness would rest entirely on the local
// invalidation of writes (below), which cannot see keys a script writes
// without declaring them. The server's own invalidations remain the
// safety net; the local one only makes read-your-writes immediate.
//
// # Guarantees
//
//   - Pending entries: a miss inserts a pending entry before the command is
//     written. An invalidation (or flush) that arrives while it is pending
//     marks it, and the reply is then returned but not stored. Because the
//     invalidation connection is not the data connection, the reply and the
//     invalidation can arrive in either order; both orders are safe: an
//     invalidation before the reply kills the pending entry, one after it
//     deletes the stored value.
//   - Epochs: every flush and every loss of an invalidation connection bumps
//     an epoch; a reply is stored only if the epoch it started under is
//     still current and every invalidation connection is up. A lost
//     connection (error, CLIENT KILL, server restart, missed keep-alive PING,
//     sentinel failover to another address) flushes the cache, and caching
//     resumes by itself once the connection is back.
//   - An invalidation with no keys (FLUSHDB, FLUSHALL) flushes the cache.
//   - Concurrent misses of one command share one round trip (single flight).
//   - Read-your-writes: every command outside the allow list that goes
//     through the client (pipelines and transactions too) invalidates, once
//     it has returned, every cached entry on a key named by its arguments;
//     FLUSHDB/FLUSHALL flush. A reply racing that invalidation is not
//     stored (pending entries, above).
//   - Bypass(ctx) and commands outside the allow list never touch the cache;
//     commands inside pipelines are never answered from it. With HookFor,
//     neither are the commands of the Tx (Watch) and Conn copies go-redis
//     makes of the client: they are bound to one connection.
//   - Memory is bounded by MaxEntries and MaxBytes per cache, entries live at
//     most TTL, and a Budget can bound the bytes of several caches together.
package cache
