// Package retry is the retry policy of a redisfactory profile (the retry:
// block), applied to a go-redis v9 client as a hook.
//
// go-redis has its own retry loop, but its retryable errors and backoff
// cannot be configured, and it retries a read timeout even for commands
// such as INCR that may then run twice. The factory therefore turns
// go-redis's command retries off (MaxRetries: -1) and installs
// [Policy.Hook], which applies exactly the profile's policy:
//
//   - how many times: retry.retries tries after the first one;
//   - how long to wait: retry.backoff, one of seven strategies with the
//     formulas of redis-py's backoff.py (see [Strategy.Delay]);
//   - on which errors: the error classes of retry.on and retry.also_on
//     (package errclass); redis.Nil and redis.TxFailedErr are never
//     retried;
//   - for which commands: unless retry.non_idempotent is true, a failed
//     command is sent again only when that cannot make it run twice: the
//     command is idempotent ([IsIdempotent]), or it never reached the
//     server (errclass.NotSent: the dial failed, no pooled connection was
//     free), or the server refused it with an error reply (LOADING,
//     READONLY, CLUSTERDOWN, TRYAGAIN, MASTERDOWN, BUSY, …);
//   - how often overall: retry.budget, the token bucket of gRPC's retry
//     throttling ([Budget]), shared by all the commands of a client.
//
// The decision for an error err from try number n of a command is: retry
// if and only if the class of err is listed, n <= retries, the command's
// context is not done, the command may be repeated (above) and the budget,
// when there is one, allows it. Each decision to retry, to give up because
// the retries ran out, or to give up because the budget refused is
// published as an [Event]. The error returned to the caller is always the
// one go-redis returned for the last try, unwrapped.
//
// Pipelines and transactions are retried as a whole, when the first
// failing command's error is retryable and every command in the batch may
// be repeated. A MULTI/EXEC transaction may be repeated only when all its
// commands are idempotent or it was never sent.
//
// # Idempotent commands
//
// A command is idempotent here when running it twice leaves the data as
// running it once would. The reply to the repeat may differ in counts (a
// repeated DEL answers 0), but commands whose reply is their purpose are
// excluded: SET NX is how a lock is taken, and a repeat would answer that
// the lock is held by someone else. Relative expiries (SET … EX, SETEX,
// EXPIRE) count as idempotent: a repeat moves the deadline later by the
// time the retry took. Every command not listed is not idempotent,
// including any command this package does not know.
//
//	Reads      GET MGET GETRANGE SUBSTR STRLEN EXISTS TYPE TTL PTTL
//	           EXPIRETIME PEXPIRETIME KEYS SCAN RANDOMKEY DBSIZE TOUCH DUMP
//	           GETBIT BITCOUNT BITPOS BITFIELD_RO LCS SORT_RO PFCOUNT
//	           HGET HMGET HGETALL HKEYS HVALS HLEN HEXISTS HSTRLEN HSCAN
//	           HRANDFIELD HTTL HPTTL HEXPIRETIME HPEXPIRETIME
//	           LRANGE LINDEX LLEN LPOS
//	           SMEMBERS SISMEMBER SMISMEMBER SCARD SSCAN SRANDMEMBER SINTER
//	           SUNION SDIFF SINTERCARD
//	           ZRANGE ZRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE ZRANGEBYLEX
//	           ZREVRANGEBYLEX ZSCORE ZMSCORE ZCARD ZCOUNT ZLEXCOUNT ZRANK
//	           ZREVRANK ZSCAN ZRANDMEMBER ZINTER ZUNION ZDIFF ZINTERCARD
//	           GEOPOS GEODIST GEOHASH GEOSEARCH GEORADIUS_RO
//	           GEORADIUSBYMEMBER_RO
//	           XLEN XRANGE XREVRANGE XREAD XPENDING
//	           EVAL_RO EVALSHA_RO FCALL_RO
//	           JSON.GET JSON.MGET JSON.TYPE JSON.STRLEN JSON.ARRLEN
//	           JSON.OBJKEYS JSON.OBJLEN
//	Server     PING ECHO TIME INFO LASTSAVE ROLE SELECT HELLO AUTH READONLY
//	           READWRITE
//	           CLIENT ID|GETNAME|SETNAME|SETINFO|INFO|LIST|TRACKINGINFO|
//	             GETREDIR|NO-EVICT|NO-TOUCH
//	           CONFIG GET
//	           CLUSTER INFO|NODES|SLOTS|SHARDS|MYID|MYSHARDID|KEYSLOT|
//	             COUNTKEYSINSLOT|GETKEYSINSLOT|LINKS
//	           COMMAND, COMMAND COUNT|DOCS|GETKEYS|GETKEYSANDFLAGS|INFO|LIST
//	           SCRIPT EXISTS|LOAD   OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT
//	           MEMORY USAGE|STATS|DOCTOR   XINFO STREAM|GROUPS|CONSUMERS
//	           FUNCTION LIST|DUMP|STATS   ACL WHOAMI|CAT|LIST|GETUSER|USERS
//	           PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB
//	           SLOWLOG GET|LEN
//	Writes     SET without NX, XX or GET    MSET SETEX PSETEX SETRANGE GETEX
//	           DEL UNLINK PERSIST
//	           EXPIRE PEXPIRE EXPIREAT PEXPIREAT without NX, XX, GT or LT
//	           HSET HMSET HDEL   SADD SREM
//	           ZADD without INCR   ZREM ZREMRANGEBYSCORE ZREMRANGEBYLEX
//	           LSET   LREM with count 0
//	           PFADD PFMERGE GEOADD   XDEL XACK XTRIM
//	           FLUSHDB FLUSHALL   SORT without STORE
//	           JSON.SET without NX or XX   JSON.DEL JSON.FORGET JSON.MSET
//
// Not idempotent, among others: INCR INCRBY INCRBYFLOAT DECR DECRBY
// APPEND SETNX MSETNX GETSET GETDEL SETBIT BITOP BITFIELD HINCRBY
// HINCRBYFLOAT HSETNX LPUSH RPUSH LPUSHX RPUSHX LINSERT LPOP RPOP LMOVE
// RPOPLPUSH LTRIM BLPOP BRPOP BLMOVE SPOP SMOVE ZINCRBY ZPOPMIN ZPOPMAX
// BZPOPMIN ZREMRANGEBYRANK the *STORE commands (SINTERSTORE, ZUNIONSTORE,
// ZRANGESTORE, GEOSEARCHSTORE, …) RENAME COPY XADD XREADGROUP XCLAIM
// XAUTOCLAIM XGROUP EVAL EVALSHA FCALL PUBLISH SPUBLISH WATCH MULTI EXEC.
//
// # Where retries happen
//
// The hook sees one call per command or pipeline and loops around go-redis's
// own processing of it. Some attempts stay go-redis's and are not counted
// as retries: dial attempts of one connection (DialerRetries), picking a
// healthy pooled connection, and, for cluster clients, MOVED and ASK
// redirections (cluster.max_redirects). In cluster mode the factory
// installs the hook's ProcessHook on every node's client
// (redis.ClusterClient.OnNewNode), where a command's errors arrive raw
// from the node that ran it, and hides an error the policy gave up on from
// go-redis's cluster loop, which would otherwise retry it again; pipelines
// and transactions are retried by the hook on the *redis.ClusterClient.
package retry
