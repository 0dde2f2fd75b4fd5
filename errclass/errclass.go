// Package errclass names the families of errors a Redis command can fail with.
//
// A Class is a stable, lower-case name ("connection", "timeout", "busy_loading",
// …). The same names are used in three places, and this package is their one
// home:
//
//   - in profiles, as the list of errors a retry policy acts on
//     (retry.on / retry.also_on);
//   - in user code, to decide what to do with an error a client returned
//     (Of, Is and the predicates below);
//   - in events and reports (the class of a failed or retried command).
//
// Classification works through wrapped errors (errors.Is / errors.As), so an
// error that user code wraps with fmt.Errorf("…: %w", err) keeps its class.
//
// # How errors map to classes
//
// Server error replies are classified by their prefix, as redis-py does:
//
//	LOADING …                          busy_loading
//	READONLY …  (also inside Lua errors) read_only
//	CLUSTERDOWN …                      cluster_down
//	TRYAGAIN …                         try_again
//	MASTERDOWN …                       master_down
//	ERR max number of clients reached  max_clients
//	OOM …                              oom
//	NOSCRIPT …                         no_script
//	NOAUTH, WRONGPASS, ERR invalid password, ERR AUTH … without any password,
//	ERR Client sent AUTH, but no password is set   auth
//	NOPERM …                           permission
//	MOVED …, ASK …                     redirect
//	CROSSSLOT …                        cross_slot
//	EXECABORT …                        exec_abort
//	WRONGTYPE …                        wrong_type
//	BUSY …                             busy
//	NOREPLICAS …                       no_replicas
//	any other reply (ERR …, …)         response
//
// Client-side errors:
//
//	redis.Nil                          nil (a missing key; not a failure)
//	redis.TxFailedErr                  watch (a WATCHed key changed)
//	redis.ErrPoolTimeout, ErrPoolExhausted   pool_timeout
//	redis.ErrClosed                    closed (the client was closed)
//	context.Canceled                   canceled
//	context.DeadlineExceeded, i/o timeouts (net.Error.Timeout)  timeout
//	TLS handshake and certificate errors, TLS alerts from the server (a
//	protocol version mismatch, a missing or refused client certificate),
//	and any failure inside a handshake wrapped in *HandshakeError (a
//	handshake that times out is a TLS client talking to a plaintext port;
//	the factory's dialer wraps, go-redis's own dialer reports only that
//	its deadline passed, which stays timeout)   tls
//	dial failures, EOF, connection reset/refused, broken pipe   connection
//	anything else                      unknown
package errclass

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/internal/suggest"
)

// Class is the stable name of a family of errors.
type Class string

// The closed set of classes. Their string values are part of the profile
// format (retry.on) and of the event and report output: never rename one.
const (
	// None is the class of a nil error.
	None Class = ""

	Connection  Class = "connection"   // the connection failed or could not be made
	Timeout     Class = "timeout"      // a socket read/write or the context deadline expired
	TLS         Class = "tls"          // TLS handshake or certificate verification failed
	Auth        Class = "auth"         // NOAUTH, WRONGPASS and other authentication failures
	Permission  Class = "permission"   // NOPERM: the ACL user may not run the command
	BusyLoading Class = "busy_loading" // LOADING: the server is loading its dataset
	ReadOnly    Class = "read_only"    // READONLY: a write reached a replica
	ClusterDown Class = "cluster_down" // CLUSTERDOWN: the cluster cannot serve the slot
	TryAgain    Class = "try_again"    // TRYAGAIN: a multi-key command during resharding
	MasterDown  Class = "master_down"  // MASTERDOWN: a replica lost its master
	MaxClients  Class = "max_clients"  // ERR max number of clients reached
	PoolTimeout Class = "pool_timeout" // no pooled connection became free in time
	OOM         Class = "oom"          // OOM: the server is out of memory
	NoScript    Class = "no_script"    // NOSCRIPT: EVALSHA of an unknown script
	Watch       Class = "watch"        // a WATCHed key changed and the transaction was aborted
	Busy        Class = "busy"         // BUSY: a script or function is running
	NoReplicas  Class = "no_replicas"  // NOREPLICAS: not enough replicas acknowledged
	Redirect    Class = "redirect"     // MOVED / ASK outside the cluster client's own handling
	CrossSlot   Class = "cross_slot"   // CROSSSLOT: keys in different slots
	ExecAbort   Class = "exec_abort"   // EXECABORT: a transaction was discarded
	WrongType   Class = "wrong_type"   // WRONGTYPE: the key holds another type
	Response    Class = "response"     // any other error reply from the server
	Closed      Class = "closed"       // the client was closed
	Canceled    Class = "canceled"     // the caller's context was canceled
	Nil         Class = "nil"          // redis.Nil: the key does not exist
	Unknown     Class = "unknown"      // an error this package does not recognise
)

// descriptions documents every class; its keys are the closed set.
var descriptions = map[Class]string{
	Connection:  "the connection failed or could not be made (dial errors, EOF, reset, refused)",
	Timeout:     "a socket read or write timed out, or the context deadline passed",
	TLS:         "the TLS handshake failed: certificate verification, a TLS version mismatch, a missing or refused client certificate, or TLS to a port that does not speak it",
	Auth:        "authentication failed (NOAUTH, WRONGPASS, invalid password)",
	Permission:  "the ACL user may not run the command (NOPERM)",
	BusyLoading: "the server is loading its dataset into memory (LOADING)",
	ReadOnly:    "a write reached a read-only replica (READONLY)",
	ClusterDown: "the cluster cannot serve the slot (CLUSTERDOWN)",
	TryAgain:    "a multi-key command hit a slot being migrated (TRYAGAIN)",
	MasterDown:  "a replica lost its link to the master (MASTERDOWN)",
	MaxClients:  "the server has reached maxclients",
	PoolTimeout: "no pooled connection became free within pool.timeout",
	OOM:         "the server is out of memory (OOM)",
	NoScript:    "EVALSHA of a script the server does not know (NOSCRIPT)",
	Watch:       "a WATCHed key changed and the transaction was aborted",
	Busy:        "a script or function is running (BUSY)",
	NoReplicas:  "not enough replicas acknowledged the write (NOREPLICAS)",
	Redirect:    "a MOVED or ASK redirection reached the caller",
	CrossSlot:   "the keys of one command are in different hash slots (CROSSSLOT)",
	ExecAbort:   "a transaction was discarded because of an earlier error (EXECABORT)",
	WrongType:   "the key holds a value of another type (WRONGTYPE)",
	Response:    "any other error reply from the server",
	Closed:      "the client was closed",
	Canceled:    "the caller's context was canceled",
	Nil:         "the key does not exist (redis.Nil); not a failure",
	Unknown:     "an error that is none of the above",
}

// All returns every class, sorted by name.
func All() []Class {
	out := make([]Class, 0, len(descriptions))
	for c := range descriptions {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Known reports whether c is one of the named classes.
func (c Class) Known() bool {
	_, ok := descriptions[c]
	return ok
}

// Retryable reports whether a retry policy may list c. Retrying a missing
// key, a canceled context or a closed client can never succeed, so those
// classes are refused in retry.on and retry.also_on.
func (c Class) Retryable() bool {
	switch c {
	case Nil, Canceled, Closed, None:
		return false
	}
	return c.Known()
}

// Description says in plain English what errors the class covers.
func (c Class) Description() string { return descriptions[c] }

// String returns the class name.
func (c Class) String() string { return string(c) }

// Parse returns the class with the given name, or an error that suggests
// the closest known name.
func Parse(name string) (Class, error) {
	c := Class(strings.TrimSpace(name))
	if c.Known() {
		return c, nil
	}
	names := make([]string, 0, len(descriptions))
	for _, k := range All() {
		names = append(names, string(k))
	}
	msg := "unknown error class " + quote(name)
	if s := suggest.Closest(name, names); s != "" {
		msg += ` (did you mean "` + s + `"?)`
	}
	return Unknown, errors.New(msg)
}

func quote(s string) string { return `"` + s + `"` }

// serverPrefixes maps the first word of a server error reply to its class.
var serverPrefixes = map[string]Class{
	"LOADING":     BusyLoading,
	"READONLY":    ReadOnly,
	"CLUSTERDOWN": ClusterDown,
	"TRYAGAIN":    TryAgain,
	"MASTERDOWN":  MasterDown,
	"OOM":         OOM,
	"NOSCRIPT":    NoScript,
	"NOAUTH":      Auth,
	"WRONGPASS":   Auth,
	"NOPERM":      Permission,
	"MOVED":       Redirect,
	"ASK":         Redirect,
	"CROSSSLOT":   CrossSlot,
	"EXECABORT":   ExecAbort,
	"WRONGTYPE":   WrongType,
	"BUSY":        Busy,
	"NOREPLICAS":  NoReplicas,
}

// authMessages are "ERR …" replies that mean authentication failed.
var authMessages = []string{
	"invalid password",
	"invalid username-password pair",
	"client sent auth, but no password is set",
	"called without any password configured",
}

// Of returns the class of err. It returns None for a nil error.
func Of(err error) Class {
	if err == nil {
		return None
	}
	switch {
	case errors.Is(err, redis.Nil):
		return Nil
	case errors.Is(err, redis.TxFailedErr):
		return Watch
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return PoolTimeout
	case errors.Is(err, redis.ErrClosed):
		return Closed
	case errors.Is(err, context.Canceled):
		return Canceled
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return ofReply(rerr.Error())
	}
	if isTLS(err) {
		return TLS
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		// A dial that timed out is still a connection failure: the command
		// was never sent.
		return Connection
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Timeout
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return Timeout
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.As(err, &op) {
		return Connection
	}
	return Unknown
}

// ofReply classifies the text of a server error reply.
func ofReply(msg string) Class {
	word, rest, _ := strings.Cut(msg, " ")
	if c, ok := serverPrefixes[word]; ok {
		return c
	}
	if word == "ERR" {
		lower := strings.ToLower(rest)
		if strings.HasPrefix(lower, "max number of clients reached") {
			return MaxClients
		}
		for _, m := range authMessages {
			if strings.Contains(lower, m) {
				return Auth
			}
		}
		// Lua errors carry the original reply inside their message
		// (go-redis treats them the same way).
		if strings.Contains(rest, "READONLY You can't write against a read only replica") {
			return ReadOnly
		}
	}
	return Response
}

func isTLS(err error) bool {
	var (
		rh   tls.RecordHeaderError
		ae   tls.AlertError
		ve   *tls.CertificateVerificationError
		ua   x509.UnknownAuthorityError
		hn   x509.HostnameError
		ci   x509.CertificateInvalidError
		echo *tls.ECHRejectionError
		he   *HandshakeError
	)
	if errors.As(err, &he) || errors.As(err, &rh) || errors.As(err, &ae) || errors.As(err, &ve) ||
		errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &echo) {
		return true
	}
	// An alert the server sent (protocol version, certificate required,
	// bad certificate, handshake failure) reaches the client as a
	// *net.OpError with Op "remote error" around crypto/tls's unexported
	// alert type; crypto/tls is the only producer of that Op. It may sit
	// under another *net.OpError (a dial), so walk the whole chain rather
	// than stop at the first match as errors.As would.
	return anyInChain(err, func(e error) bool {
		if op, ok := e.(*net.OpError); ok && op.Op == "remote error" {
			return true
		}
		// crypto/tls's own checks (e.g. "tls: server selected unsupported
		// protocol version") are plain errors whose text starts "tls: ".
		return strings.HasPrefix(e.Error(), "tls: ")
	})
}

// anyInChain reports whether f holds for err or any error it wraps,
// following both Unwrap() error and Unwrap() []error.
func anyInChain(err error, f func(error) bool) bool {
	for depth := 0; err != nil && depth < 100; depth++ {
		if f(err) {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if anyInChain(e, f) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// HandshakeError is the failure of a TLS handshake, whatever its cause.
// Dialers that run the handshake themselves (the factory's does) wrap its
// error in it, so that Of returns TLS for causes that alone would read as
// another class: a handshake that times out is almost always a TLS client
// talking to a plaintext port, and one cut short by EOF a server that
// refused the handshake. A handshake canceled by the caller's context stays
// canceled.
type HandshakeError struct {
	// Err is what the handshake returned.
	Err error
}

// Error says that the TLS handshake failed and why.
func (e *HandshakeError) Error() string {
	msg := "TLS handshake failed: " + e.Err.Error()
	if errors.Is(e.Err, context.DeadlineExceeded) || errors.Is(e.Err, os.ErrDeadlineExceeded) {
		msg += " (no TLS answer in time: does the server listen with TLS on this port?)"
	}
	return msg
}

// Unwrap returns the cause.
func (e *HandshakeError) Unwrap() error { return e.Err }

// Is reports whether err belongs to class c.
func Is(err error, c Class) bool { return err != nil && Of(err) == c }

// IsConnection reports whether err is a connection failure.
func IsConnection(err error) bool { return Is(err, Connection) }

// IsTimeout reports whether err is a timeout (socket or context deadline).
func IsTimeout(err error) bool { return Is(err, Timeout) }

// IsAuth reports whether err is an authentication failure.
func IsAuth(err error) bool { return Is(err, Auth) }

// IsBusyLoading reports whether the server replied LOADING.
func IsBusyLoading(err error) bool { return Is(err, BusyLoading) }

// IsReadOnly reports whether a write reached a read-only replica.
func IsReadOnly(err error) bool { return Is(err, ReadOnly) }

// IsClusterDown reports whether the cluster replied CLUSTERDOWN.
func IsClusterDown(err error) bool { return Is(err, ClusterDown) }

// IsWatch reports whether a WATCHed transaction was aborted.
func IsWatch(err error) bool { return Is(err, Watch) }

// IsResponse reports whether err is a server error reply with no more
// specific class (for example "ERR syntax error").
func IsResponse(err error) bool { return Is(err, Response) }

// IsServerReply reports whether err is an error reply from the server of any
// class, as opposed to a failure of the client, the network or the context.
func IsServerReply(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && !errors.Is(err, redis.Nil) && !errors.Is(err, redis.TxFailedErr)
}

// NotSent reports whether err shows that the command never reached the
// server: the dial failed, no pooled connection was free, or an error in
// the chain says so with a NotSent() bool method (the factory's failed
// health check does). Such a command may be retried even when it is not
// idempotent.
func NotSent(err error) bool {
	if errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) {
		return true
	}
	var ns interface{ NotSent() bool }
	if errors.As(err, &ns) && ns.NotSent() {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
