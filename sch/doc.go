// Package sch is smart client handoffs: an [Engine] that acts on Redis
// maintenance notifications for the factory's clients (with go-redis's own
// maintenance machinery off), turns what it does into runtime events, and
// a maintenance proxy that lets tests, and teams in staging, rehearse a
// maintenance against a real open-source Redis server. An [Observer] does
// the event part for plain go-redis clients that use go-redis's own
// notifications.
//
// # Modes
//
//   - disabled: the client never asks for notifications.
//   - auto (the default): every new connection sends
//     CLIENT MAINT_NOTIFICATIONS ON moving-endpoint-type <type> as the last
//     step of its handshake; if the server refuses it (open-source Redis
//     says "unknown subcommand"), the client stops asking, quietly, and
//     keeps working. RESP2 and unix-socket profiles are always off.
//   - enabled: the handshake is required; a connection whose server refuses
//     it fails. Validation refuses enabled on RESP2 and unix-socket
//     profiles.
//
// Standalone, Sentinel (the master's connections, not the sentinels') and
// cluster profiles (per node) all use them.
//
// # Notifications
//
// Servers announce a maintenance with RESP3 push frames, per connection:
//
//	MOVING <seq> <seconds> <host:port | null>  move to the new endpoint
//	MIGRATING <seq> ...                         relax the connection's timeouts
//	MIGRATED <seq> ...                          restore them
//	FAILING_OVER <seq> ...                      relax the connection's timeouts
//	FAILED_OVER <seq> ...                       restore them
//	SMIGRATING / SMIGRATED (cluster)            relax; restore and reload the slot map
//
// # How the engine hands off
//
// go-redis v9.23.0 hands a connection off in place: its handoff worker
// re-dials a pooled connection and re-runs the handshake on it while the
// connection can be handed to a command, which under load crosses replies
// (a command reads the handshake's reply) and trips the race detector. The
// engine never re-initialises a connection:
//
//   - its push handlers (registered with go-redis's
//     RegisterPushNotificationHandler, which passes the receiving
//     connection) act on the connection the notification came on;
//   - a MOVING retires the connection: go-redis removes it when it is
//     returned to the pool (the command it was running finishes first),
//     and the engine's connection wrapper refuses a new command on it
//     before writing a byte ([RetiredError]); the engine's innermost hook
//     then runs the command again, on another connection, so it is sent
//     exactly once;
//   - the engine's dialer sends the dials of the moved address to the
//     announced endpoint (with the client's dialer, TLS, AUTH and
//     handshake), and falls back to the address when the endpoint cannot
//     be dialed;
//   - a null endpoint means "the same address, later": the connection is
//     retired after half the announced time.
//
// # Relaxed timeouts
//
// go-redis replaces a connection's timeouts with the relaxed one during a
// maintenance, so a blocking command longer than relaxed_timeout would
// time out. The engine's connection wrapper instead raises each deadline
// go-redis sets to at least relaxed_timeout from now: the larger of the two
// wins, and a BLPOP keeps its own blocking time (0, forever, included).
package sch
