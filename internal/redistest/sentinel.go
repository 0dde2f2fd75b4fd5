package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel timings (milliseconds): failures are detected after a second, a
// stuck failover is abandoned after a few seconds.
const (
	sentinelDownAfter       = 1000
	sentinelFailoverTimeout = 5000
)

// SentinelOptions configures [StartSentinel].
type SentinelOptions struct {
	// MasterName is the monitored master's name; default "mymaster".
	MasterName string
	// Sentinels is the number of sentinel processes, 1 (default) or 3.
	// The quorum is a majority (1 or 2).
	Sentinels int
	// Password is set as requirepass on the master and the replica (and as
	// masterauth / sentinel auth-pass). Sentinels themselves need no password.
	Password string
}

// Sentinel is a master, one replica and 1 or 3 sentinels monitoring them,
// owned by a test.
type Sentinel struct {
	// MasterName is the name the sentinels monitor the master under.
	MasterName string

	password  string
	sentinels []*Server

	mu      sync.Mutex
	master  *Server
	replica *Server
}

// StartSentinel starts a master, a replica (replicaof the master) and the
// sentinels, and waits until the replica is in sync, every sentinel sees the
// master and the replica as healthy, knows the other sentinels and reports
// that the quorum is reachable (SENTINEL CKQUORUM).
func StartSentinel(t testing.TB, opts SentinelOptions) *Sentinel {
	t.Helper()
	if opts.MasterName == "" {
		opts.MasterName = "mymaster"
	}
	if opts.Sentinels == 0 {
		opts.Sentinels = 1
	}
	if opts.Sentinels != 1 && opts.Sentinels != 3 {
		t.Fatalf("redistest: SentinelOptions.Sentinels must be 1 or 3, got %d", opts.Sentinels)
	}
	sn := &Sentinel{MasterName: opts.MasterName, password: opts.Password}

	sn.master = newServer(t, "master", Options{Password: opts.Password})
	if opts.Password != "" {
		// Lets the master replicate from the replica after a failover.
		sn.master.roleArgs = func() []string { return []string{"--masterauth", opts.Password} }
	}
	sn.master.start(t)
	sn.replica = newServer(t, "replica", Options{Password: opts.Password})
	masterPort := sn.master.Port()
	sn.replica.roleArgs = func() []string {
		a := []string{"--replicaof", "127.0.0.1", strconv.Itoa(masterPort)}
		if opts.Password != "" {
			a = append(a, "--masterauth", opts.Password)
		}
		return a
	}
	sn.replica.start(t)
	ctx := context.Background()
	err := waitFor(ctx, stableTimeout, func(ctx context.Context) error {
		info, err := sn.replica.admin().Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if st := parseInfo(info)["master_link_status"]; st != "up" {
			return fmt.Errorf("replica master_link_status:%s", st)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: replica did not sync: %v", err)
	}

	quorum := opts.Sentinels/2 + 1
	for i := 0; i < opts.Sentinels; i++ {
		s := newServer(t, fmt.Sprintf("sentinel-%d", i), Options{})
		conf := filepath.Join(s.dir, "sentinel.conf")
		confPort := 0
		s.build = func() ([]string, error) {
			// Sentinel rewrites its config file with what it learned; keep
			// that across Restart and only (re)write it for a new port.
			if confPort != s.port {
				if err := os.WriteFile(conf, []byte(sentinelConf(s.port, s.dir, opts, masterPort, quorum)), 0o644); err != nil {
					return nil, err
				}
				confPort = s.port
			}
			return []string{conf, "--sentinel"}, nil
		}
		s.start(t)
		sn.sentinels = append(sn.sentinels, s)
	}
	if err := waitFor(ctx, stableTimeout, sn.checkHealthy); err != nil {
		t.Fatalf("redistest: sentinels not ready: %v", err)
	}
	return sn
}

func sentinelConf(port int, dir string, opts SentinelOptions, masterPort, quorum int) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("port %d", port)
	p("bind 127.0.0.1 -::1")
	p("dir %q", dir)
	p("daemonize no")
	p(`logfile ""`)
	p("sentinel resolve-hostnames no")
	p("sentinel announce-hostnames no")
	p("sentinel monitor %s 127.0.0.1 %d %d", opts.MasterName, masterPort, quorum)
	p("sentinel down-after-milliseconds %s %d", opts.MasterName, sentinelDownAfter)
	p("sentinel failover-timeout %s %d", opts.MasterName, sentinelFailoverTimeout)
	p("sentinel parallel-syncs %s 1", opts.MasterName)
	if opts.Password != "" {
		p("sentinel auth-pass %s %s", opts.MasterName, opts.Password)
	}
	return b.String()
}

// checkHealthy verifies every sentinel's view of the topology.
func (sn *Sentinel) checkHealthy(ctx context.Context) error {
	for _, s := range sn.sentinels {
		cl := s.admin()
		m, err := cl.Do(ctx, "SENTINEL", "MASTER", sn.MasterName).Slice()
		if err != nil {
			return fmt.Errorf("%s: SENTINEL MASTER: %w", s.Addr(), err)
		}
		master := flatMap(m)
		if master["flags"] != "master" {
			return fmt.Errorf("%s: master flags %q", s.Addr(), master["flags"])
		}
		if want := strconv.Itoa(len(sn.sentinels) - 1); master["num-other-sentinels"] != want {
			return fmt.Errorf("%s: num-other-sentinels %s, want %s", s.Addr(), master["num-other-sentinels"], want)
		}
		reps, err := cl.Do(ctx, "SENTINEL", "REPLICAS", sn.MasterName).Slice()
		if err != nil {
			return fmt.Errorf("%s: SENTINEL REPLICAS: %w", s.Addr(), err)
		}
		healthy := 0
		for _, r := range reps {
			rs, _ := r.([]any)
			rm := flatMap(rs)
			if rm["flags"] == "slave" && rm["master-link-status"] == "ok" {
				healthy++
			}
		}
		if healthy == 0 {
			return fmt.Errorf("%s: no healthy replica known yet", s.Addr())
		}
		if err := cl.Do(ctx, "SENTINEL", "CKQUORUM", sn.MasterName).Err(); err != nil {
			return fmt.Errorf("%s: SENTINEL CKQUORUM: %w", s.Addr(), err)
		}
	}
	return nil
}

func flatMap(kv []any) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = fmt.Sprint(kv[i+1])
	}
	return m
}

// Sentinels returns the sentinel processes.
func (sn *Sentinel) Sentinels() []*Server { return append([]*Server(nil), sn.sentinels...) }

// SentinelAddrs returns the sentinels' addresses.
func (sn *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(sn.sentinels))
	for i, s := range sn.sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Master returns the data server that is master: the one started as master,
// or the promoted one after a successful [Sentinel.Failover]. Failovers the
// sentinels perform on their own (e.g. after Kill) are not tracked; use
// [Sentinel.CurrentMasterAddr] for the sentinels' view.
func (sn *Sentinel) Master() *Server {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	return sn.master
}

// Replica returns the data server that is not [Sentinel.Master]. The
// replica started by StartSentinel runs with --replicaof the original
// master, also after Restart; the sentinels reconfigure it if needed.
func (sn *Sentinel) Replica() *Server {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	return sn.replica
}

// FailoverOptions returns fresh go-redis options for a sentinel-backed
// client of the master. Callers may modify the result.
func (sn *Sentinel) FailoverOptions() *redis.FailoverOptions {
	return &redis.FailoverOptions{
		MasterName:    sn.MasterName,
		SentinelAddrs: sn.SentinelAddrs(),
		Password:      sn.password,
	}
}

// Client returns a go-redis failover client (see
// [Sentinel.FailoverOptions]); it is closed when the test ends.
func (sn *Sentinel) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewFailoverClient(sn.FailoverOptions())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// CurrentMasterAddr asks the sentinels, in order, for the master address
// (SENTINEL GET-MASTER-ADDR-BY-NAME) and returns the first answer as
// "host:port".
func (sn *Sentinel) CurrentMasterAddr(ctx context.Context) (string, error) {
	var errs []error
	for _, s := range sn.sentinels {
		addr, err := sn.masterAddrFrom(ctx, s)
		if err == nil {
			return addr, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.Addr(), err))
	}
	return "", errors.Join(errs...)
}

func (sn *Sentinel) masterAddrFrom(ctx context.Context, s *Server) (string, error) {
	hp, err := s.admin().Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", sn.MasterName).StringSlice()
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("unexpected reply %q", hp)
	}
	return hp[0] + ":" + hp[1], nil
}

// Failover forces a failover (SENTINEL FAILOVER on the first running sentinel,
// retried while the sentinel reports no suitable replica yet) and waits
// until every sentinel reports a new master address and the promoted server
// reports role master. Master and Replica are swapped on success. Without a
// deadline on ctx it gives up after 30s.
//
// If the old master is running (not killed or paused), Failover then makes it
// a replica of the new master (REPLICAOF, what the sentinels would do about
// ten seconds later) and waits until it is in sync, so the topology is
// settled and ready for another Failover when it returns.
func (sn *Sentinel) Failover(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, stableTimeout)
		defer cancel()
	}
	old, err := sn.CurrentMasterAddr(ctx)
	if err != nil {
		return fmt.Errorf("redistest: failover: %w", err)
	}
	first := sn.sentinels[0]
	for _, s := range sn.sentinels {
		if s.running() {
			first = s
			break
		}
	}
	for {
		err := first.admin().Do(ctx, "SENTINEL", "FAILOVER", sn.MasterName).Err()
		if err == nil {
			break
		}
		msg := err.Error()
		if strings.HasPrefix(msg, "INPROG") {
			// Another failover (automatic, or the tail of a previous one) is
			// running. If it already moved the master, that is our failover.
			if cur, cerr := sn.CurrentMasterAddr(ctx); cerr == nil && cur != old {
				break
			}
		} else if !strings.HasPrefix(msg, "NOGOODSLAVE") {
			return fmt.Errorf("redistest: SENTINEL FAILOVER: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: SENTINEL FAILOVER: %w (%v)", err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}

	var promoted *Server
	for {
		promoted, err = sn.checkFailedOver(ctx, old)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: failover from %s did not complete: %w", old, err)
		case <-time.After(pollInterval):
		}
	}
	sn.mu.Lock()
	if promoted == sn.replica {
		sn.master, sn.replica = sn.replica, sn.master
	}
	demoted := sn.replica
	sn.mu.Unlock()

	// Sentinel would turn the old master into a replica of the new one only
	// ~10s later; do it now so the topology is settled (and ready for another
	// failover) when Failover returns.
	if !demoted.running() {
		return nil
	}
	newPort := strconv.Itoa(promoted.Port())
	if err := demoted.admin().Do(ctx, "REPLICAOF", "127.0.0.1", newPort).Err(); err != nil {
		return fmt.Errorf("redistest: REPLICAOF on old master %s: %w", demoted.Addr(), err)
	}
	for {
		info, err := demoted.admin().Info(ctx, "replication").Result()
		if err == nil {
			m := parseInfo(info)
			if m["role"] == "slave" && m["master_port"] == newPort && m["master_link_status"] == "up" {
				return nil
			}
			err = fmt.Errorf("role:%s master_port:%s master_link_status:%s", m["role"], m["master_port"], m["master_link_status"])
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: old master %s did not sync with the new one: %w", demoted.Addr(), err)
		case <-time.After(pollInterval):
		}
	}
}

// checkFailedOver returns the promoted server once all running sentinels
// agree on a master address different from old and have finished the
// failover, and that server's role is master.
func (sn *Sentinel) checkFailedOver(ctx context.Context, old string) (*Server, error) {
	var addr string
	for _, s := range sn.sentinels {
		if !s.running() {
			continue
		}
		a, err := sn.masterAddrFrom(ctx, s)
		if err != nil {
			return nil, err
		}
		if a == old {
			return nil, fmt.Errorf("%s still reports %s", s.Addr(), old)
		}
		if addr != "" && a != addr {
			return nil, fmt.Errorf("sentinels disagree: %s vs %s", addr, a)
		}
		addr = a
		m, err := s.admin().Do(ctx, "SENTINEL", "MASTER", sn.MasterName).Slice()
		if err != nil {
			return nil, err
		}
		if flags := flatMap(m)["flags"]; strings.Contains(flags, "failover") {
			return nil, fmt.Errorf("%s: failover still running (%s)", s.Addr(), flags)
		}
	}
	sn.mu.Lock()
	candidates := []*Server{sn.master, sn.replica}
	sn.mu.Unlock()
	for _, s := range candidates {
		if s.Addr() != addr {
			continue
		}
		role, err := s.admin().Do(ctx, "ROLE").Slice()
		if err != nil {
			return nil, err
		}
		if len(role) == 0 || role[0] != "master" {
			return nil, fmt.Errorf("%s reports role %v", addr, role)
		}
		return s, nil
	}
	if addr == "" {
		return nil, errors.New("no sentinel is running")
	}
	return nil, fmt.Errorf("new master %s is not one of ours", addr)
}

// StartSentinelFor starts one sentinel monitoring the master at masterAddr
// ("127.0.0.1:port", which may be a proxy in front of a server) under
// masterName, with no replica, and waits until the sentinel reports it as a
// healthy master. It returns the sentinel.
func StartSentinelFor(t testing.TB, masterName, masterAddr string) *Server {
	t.Helper()
	host, portStr, err := net.SplitHostPort(masterAddr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("redistest: StartSentinelFor needs 127.0.0.1:port, got %q", masterAddr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("redistest: StartSentinelFor: %v", err)
	}
	s := newServer(t, "sentinel", Options{})
	conf := filepath.Join(s.dir, "sentinel.conf")
	s.build = func() ([]string, error) {
		// A long failover-timeout: the sentinel waits that long before it
		// "fixes" a replica that replicates from the server behind the proxy
		// instead of from the monitored address (through the proxy, which
		// does not carry replication).
		c := sentinelConf(s.port, s.dir, SentinelOptions{MasterName: masterName}, port, 1) +
			fmt.Sprintf("sentinel failover-timeout %s 60000\n", masterName)
		if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
			return nil, err
		}
		return []string{conf, "--sentinel"}, nil
	}
	s.start(t)
	err = waitFor(context.Background(), stableTimeout, func(ctx context.Context) error {
		m, err := s.admin().Do(ctx, "SENTINEL", "MASTER", masterName).Slice()
		if err != nil {
			return err
		}
		if f := flatMap(m)["flags"]; f != "master" {
			return fmt.Errorf("master flags %q", f)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: sentinel does not see %s as a healthy master: %v", masterAddr, err)
	}
	return s
}
