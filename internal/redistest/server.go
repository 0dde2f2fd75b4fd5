package redistest

import (
	"github.com/redisfactory/redisfactory/internal/resp"

	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// stopTimeout bounds a graceful Stop before it escalates to SIGKILL.
const stopTimeout = 15 * time.Second

// ACLUser is an extra ACL user created at server start (redis "user"
// directive). The user is always enabled ("on").
type ACLUser struct {
	// Name is the user name.
	Name string
	// Password is the user's password; empty means "nopass".
	Password string
	// Rules are ACL rules separated by spaces, e.g. "~* &* +@all".
	// Empty means the user can run nothing.
	Rules string
}

// Options configures a server started by [Start].
type Options struct {
	// Password sets requirepass (the password of the "default" user).
	Password string
	// Users are additional ACL users.
	Users []ACLUser
	// TLS makes the server listen on a TLS-only port. A fresh CA, server
	// certificate and client certificate are generated in the server's
	// directory, see [Server.TLS]. Clients must present the client
	// certificate (redis' default tls-auth-clients yes); pass
	// Args: []string{"--tls-auth-clients", "optional"} to relax that.
	TLS bool
	// Args are extra redis-server command line arguments, appended after
	// the defaults so they override them, e.g. {"--maxmemory", "10mb"}.
	Args []string
	// Port is the port to listen on; 0 picks a free one.
	Port int
}

// Server is a redis-server (or sentinel) process owned by a test. It is
// stopped automatically when the test that started it ends. All methods are
// safe for concurrent use.
type Server struct {
	// TLS holds the certificate files when Options.TLS was set; nil otherwise.
	TLS *TLSFiles

	name     string
	opts     Options
	dir      string
	logPath  string
	autoPort bool
	// build returns the command line for the next launch.
	build func() ([]string, error)
	// roleArgs returns topology specific arguments (cluster, replication)
	// inserted before Options.Args.
	roleArgs func() []string

	mu      sync.Mutex
	port    int
	busPort int // cluster bus port, 0 when not a cluster node
	cmd     *exec.Cmd
	exited  chan struct{}
	paused  bool
	logMark int64 // log size at the last launch

	adminMu sync.Mutex
	adminCl *redis.Client
}

// Start starts a redis-server with opts, waits until it answers PING and
// registers a cleanup that kills it (and, if the test failed, prints its
// log). The server runs with --save "" --appendonly no --bind 127.0.0.1 -::1
// --dir <temp dir> --enable-debug-command yes --repl-diskless-sync-delay 0
// unless opts.Args override them. Start skips or fails the test like
// [Require] when redis-server is missing.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := newServer(t, "redis", opts)
	s.start(t)
	return s
}

// newServer prepares a server (directory, ports, certificates, cleanup)
// without launching it.
func newServer(t testing.TB, name string, opts Options) *Server {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	s := &Server{
		name:     name,
		opts:     opts,
		dir:      dir,
		logPath:  filepath.Join(dir, "redis.log"),
		autoPort: opts.Port == 0,
		port:     opts.Port,
	}
	s.build = s.dataArgs
	if s.autoPort {
		s.port = FreePort(t)
	}
	if opts.TLS {
		s.TLS = GenerateTLS(t, filepath.Join(dir, "tls"))
	}
	t.Cleanup(func() {
		s.Kill()
		s.adminMu.Lock()
		if s.adminCl != nil {
			_ = s.adminCl.Close()
		}
		s.adminMu.Unlock()
		if t.Failed() {
			t.Logf("redistest: %s on %s failed test; server log (%s):\n%s", s.name, s.Addr(), s.logPath, s.logTail())
		}
	})
	return s
}

// start launches the server, retrying with fresh ports when an
// automatically chosen port turned out to be taken.
func (s *Server) start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		err := s.launchLocked()
		if err == nil {
			return
		}
		if s.autoPort && attempt < 5 && s.addrInUseLocked() {
			ports, perr := freePorts(2)
			if perr != nil {
				t.Fatalf("redistest: %v", perr)
			}
			s.port = ports[0]
			if s.busPort != 0 {
				s.busPort = ports[1]
			}
			continue
		}
		t.Fatalf("redistest: starting %s on port %d: %v\nserver log:\n%s", s.name, s.port, err, s.logTail())
	}
}

// dataArgs is the command line of a regular (non-sentinel) server.
func (s *Server) dataArgs() ([]string, error) {
	port := strconv.Itoa(s.port)
	var a []string
	if s.TLS != nil {
		a = append(a,
			"--port", "0",
			"--tls-port", port,
			"--tls-cert-file", s.TLS.CertFile,
			"--tls-key-file", s.TLS.KeyFile,
			"--tls-ca-cert-file", s.TLS.CAFile,
			"--tls-replication", "yes",
			"--tls-cluster", "yes",
		)
	} else {
		a = append(a, "--port", port)
	}
	a = append(a,
		"--bind", "127.0.0.1", "-::1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--enable-debug-command", "yes",
		"--repl-diskless-sync-delay", "0",
		"--daemonize", "no",
	)
	if s.opts.Password != "" {
		a = append(a, "--requirepass", s.opts.Password)
	}
	for _, u := range s.opts.Users {
		a = append(a, "--user", u.Name, "on")
		if u.Password == "" {
			a = append(a, "nopass")
		} else {
			a = append(a, ">"+u.Password)
		}
		a = append(a, strings.Fields(u.Rules)...)
	}
	if s.roleArgs != nil {
		a = append(a, s.roleArgs()...)
	}
	a = append(a, s.opts.Args...)
	return a, nil
}

var errExited = errors.New("redis-server exited")

// launchLocked starts the process and waits until it is ready. s.mu must
// be held.
func (s *Server) launchLocked() error {
	args, err := s.build()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if fi, err := logf.Stat(); err == nil {
		s.logMark = fi.Size()
	}
	fmt.Fprintf(logf, "==== redistest %s: %s %s ====\n", time.Now().Format(time.RFC3339Nano), serverBinary, strings.Join(quoteArgs(args), " "))
	cmd := exec.Command(serverBinary, args...)
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	_ = logf.Close() // the child has its own descriptor
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited, s.paused = cmd, exited, false
	if err := s.waitReady(exited); err != nil {
		s.killLocked()
		return err
	}
	return nil
}

// waitReady polls the server with PING until it answers.
func (s *Server) waitReady(exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var last error
	for {
		select {
		case <-exited:
			return errExited
		default:
		}
		if last = s.ping(ctx); last == nil {
			return nil
		}
		select {
		case <-exited:
			return errExited
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %w", readyTimeout, last)
		case <-time.After(pollInterval):
		}
	}
}

// ping opens a fresh connection, authenticates if needed and sends PING.
func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addrLocked())
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if s.TLS != nil {
		cfg := s.TLS.ClientConfig()
		cfg.ServerName = "127.0.0.1"
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		conn = tc
	}
	var req []byte
	if s.opts.Password != "" {
		req = append(req, EncodeCommand("AUTH", s.opts.Password)...)
	}
	req = append(req, EncodeCommand("PING")...)
	if _, err := conn.Write(req); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	if s.opts.Password != "" {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+OK") {
			return fmt.Errorf("AUTH: %s", strings.TrimSpace(line))
		}
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING: %s", strings.TrimSpace(line))
	}
	return nil
}

// addrInUseLocked reports whether the last launch failed to bind.
func (s *Server) addrInUseLocked() bool {
	b, err := os.ReadFile(s.logPath)
	if err != nil || int64(len(b)) < s.logMark {
		return false
	}
	return strings.Contains(string(b[s.logMark:]), "Address already in use")
}

// logTail returns the end of the server log.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	return string(tail(b, 64<<10))
}

// Log returns the server's log (stdout and stderr of all its launches).
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// Dir returns the server's working directory (its --dir).
func (s *Server) Dir() string { return s.dir }

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrLocked()
}

func (s *Server) addrLocked() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port returns the port the server listens on (the TLS port for TLS
// servers). It does not change across Restart.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// Pid returns the process id, or 0 when the server is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || isClosed(s.exited) {
		return 0
	}
	return s.cmd.Process.Pid
}

// TLSConfig returns a client *tls.Config trusting the server's CA and
// presenting the client certificate, or nil for a plain-text server.
func (s *Server) TLSConfig() *tls.Config {
	if s.TLS == nil {
		return nil
	}
	return s.TLS.ClientConfig()
}

// RedisOptions returns fresh go-redis options for an admin connection to
// the server (address, password of the default user, TLS). Callers may
// modify the result, e.g. to set MaxRetries or timeouts.
func (s *Server) RedisOptions() *redis.Options {
	return &redis.Options{
		Addr:      s.Addr(),
		Password:  s.opts.Password,
		TLSConfig: s.TLSConfig(),
	}
}

// Client returns a go-redis client for the default user (see
// [Server.RedisOptions]); it is closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(s.RedisOptions())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// InfoInt returns the integer field of INFO's section (for example
// "stats", "total_connections_received"), read by the helpers' own
// connection (which INFO "clients" counts).
func (s *Server) InfoInt(t testing.TB, section, field string) int64 {
	t.Helper()
	info, err := s.admin().Info(context.Background(), section).Result()
	if err != nil {
		t.Fatalf("redistest: INFO %s on %s: %v", section, s.Addr(), err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("redistest: INFO %s: %q: %v", section, line, err)
			}
			return n
		}
	}
	t.Fatalf("redistest: no %s in INFO %s", field, section)
	return 0
}

// admin returns the internal client used by the helpers: RESP2, fail-fast
// timeouts, no retries. It lives until the test ends.
func (s *Server) admin() *redis.Client {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if s.adminCl == nil {
		opts := s.RedisOptions()
		opts.Protocol = 2
		opts.DialTimeout = 2 * time.Second
		opts.ReadTimeout = 2 * time.Second
		opts.WriteTimeout = 2 * time.Second
		opts.MaxRetries = -1
		opts.PoolSize = 2
		opts.DisableIdentity = true
		s.adminCl = redis.NewClient(opts)
	}
	return s.adminCl
}

// Stop shuts the server down gracefully (SIGTERM), escalating to SIGKILL
// after 15s. It does nothing when the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(false)
}

// Kill kills the server with SIGKILL (its whole process group) and waits
// for it to exit. It does nothing when the server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

func (s *Server) killLocked() { s.stopLocked(true) }

func (s *Server) stopLocked(kill bool) {
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	if !isClosed(s.exited) {
		// The process is not reaped before exited is closed, so its pid and
		// process group cannot have been reused yet.
		if kill {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		} else {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			_ = syscall.Kill(-pid, syscall.SIGCONT) // in case it is paused
		}
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	s.cmd, s.paused = nil, false
}

// Pause freezes the server with SIGSTOP: connections are accepted by the
// kernel but nothing is answered, like a hung server. Resume undoes it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP, true) }

// Resume continues a server frozen by Pause (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT, false) }

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || isClosed(s.exited) {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	s.paused = paused
}

// Restart starts the server again on the same port with the same options
// and directory (so a cluster node keeps its nodes.conf), stopping it
// gracefully first if it is still running, and waits until it answers PING.
// Failures are reported with t.Fatal, so call it from the test goroutine.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(false)
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.launchLocked()
		if err == nil {
			return
		}
		// The port may be held briefly by a dying process or a client
		// socket; keep trying the same port for a while.
		if s.addrInUseLocked() && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		t.Fatalf("redistest: restarting %s on port %d: %v\nserver log:\n%s", s.name, s.port, err, s.logTail())
	}
}

// running reports whether the process is up and not paused.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil && !isClosed(s.exited) && !s.paused
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// quoteArgs quotes arguments for the log header.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}

// EncodeCommand encodes args as a RESP array of bulk strings, the way
// clients send commands.
func EncodeCommand(args ...string) []byte { return resp.Command(args...) }
