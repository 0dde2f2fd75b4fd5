// Package sch is smart client handoffs: it maps a profile's sch block onto
// go-redis's maintenance notifications (package maintnotifications), turns
// what go-redis does with them into runtime events, and provides a
// maintenance proxy that lets tests, and teams in staging, rehearse a
// maintenance against a real open-source Redis server.
//
// # Modes
//
//   - disabled: the client never asks for notifications.
//   - auto (the default): every new connection sends
//     CLIENT MAINT_NOTIFICATIONS ON moving-endpoint-type <type> after HELLO 3;
//     if the server refuses it (open-source Redis says "unknown subcommand")
//     or the connection fell back to RESP2, the client turns the feature off
//     quietly and keeps working. Sentinel profiles and RESP2 profiles are
//     always off in auto mode: go-redis's failover client has no maintenance
//     notifications.
//   - enabled: the handshake is required; a connection whose server refuses
//     it fails. Validation refuses enabled on sentinel, RESP2 and unix-socket
//     profiles.
//
// # Notifications
//
// Servers announce a maintenance with RESP3 push frames, per connection:
//
//	MOVING <seq> <seconds> <host:port | null>  hand the connection off to the new endpoint
//	MIGRATING <seq> ...                         relax the connection's timeouts
//	MIGRATED <seq> ...                          restore them
//	FAILING_OVER <seq> ...                      relax the connection's timeouts
//	FAILED_OVER <seq> ...                       restore them
//	SMIGRATING / SMIGRATED (cluster)            relax; restore and reload the slot map
//
// go-redis hands a connection off in place: a connection told to move
// finishes its in-flight command, is dialled again to the new endpoint
// (with the client's dialer, TLS and AUTH), re-runs its handshake, keeps
// relaxed timeouts for post_handoff_relaxed_duration and then closes the
// old socket. A null endpoint means "the same address, later": the handoff
// happens after half the announced time.
//
// # Relaxed timeouts
//
// go-redis REPLACES a connection's read and write timeouts with the relaxed
// timeout while a maintenance is under way; it does not take the larger of
// the two. [MaintConfig] therefore raises relaxed_timeout to the profile's
// read and write timeouts, so that a maintenance never shortens a timeout
// the profile set longer. Blocking commands (BLPOP, XREAD BLOCK, WAIT, …)
// are the exception go-redis cannot be configured around: during a
// maintenance their read deadline is the relaxed timeout too, so a
// blocking command whose timeout is longer than relaxed_timeout (or
// infinite) ends with a timeout error once relaxed_timeout has passed.
// Keep blocking timeouts below relaxed_timeout, or raise relaxed_timeout.
package sch
