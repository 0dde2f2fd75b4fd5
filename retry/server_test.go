package retry_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/require"
)

// This file is a tiny RESP2 server, just enough for a real go-redis client
// to talk to over a socket, with scripted failures. (internal/redistest's
// Start/NewProxy were not written yet when this package was; the tests
// that need a real redis-server start one themselves, see
// realserver_test.go.)

// action is what the fake server does with one command.
type action struct {
	reply string        // raw RESP reply; "" means the default reply
	delay time.Duration // wait before replying (the command has run)
	close bool          // close the connection instead of replying
}

// fakeServer counts commands and runs a script that may replace replies.
type fakeServer struct {
	ln net.Listener

	mu     sync.Mutex
	counts map[string]int                   // upper-case command name → times seen
	values map[string]int64                 // INCR counters
	script func(cmd []string, n int) action // n: how many times cmd[0] was seen, this one included
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startFake(t *testing.T, script func(cmd []string, n int) action) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &fakeServer{ln: ln, counts: map[string]int{}, values: map[string]int64{}, script: script, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) Addr() string { return s.ln.Addr().String() }

func (s *fakeServer) Count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[strings.ToUpper(name)]
}

func (s *fakeServer) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *fakeServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	rd := bufio.NewReader(c)
	for {
		cmd, err := readCommand(rd)
		if err != nil {
			return
		}
		name := strings.ToUpper(cmd[0])
		s.mu.Lock()
		s.counts[name]++
		n := s.counts[name]
		var a action
		if s.script != nil {
			a = s.script(cmd, n)
		}
		if a.close {
			s.mu.Unlock()
			return
		}
		reply := a.reply
		if reply == "" {
			reply = s.defaultReply(name, cmd)
		}
		s.mu.Unlock()
		if a.delay > 0 {
			time.Sleep(a.delay)
		}
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
	}
}

// defaultReply runs cmd; s.mu is held.
func (s *fakeServer) defaultReply(name string, cmd []string) string {
	switch name {
	case "PING":
		return "+PONG\r\n"
	case "SET":
		return "+OK\r\n"
	case "GET":
		return "$-1\r\n"
	case "INCR":
		s.values[cmd[1]]++
		return ":" + strconv.FormatInt(s.values[cmd[1]], 10) + "\r\n"
	}
	return fmt.Sprintf("-ERR unknown command '%s'\r\n", cmd[0])
}

func readCommand(rd *bufio.Reader) ([]string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[0] != '*' {
		return nil, errors.New("fake: expected an array")
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return nil, err
	}
	cmd := make([]string, n)
	for i := range cmd {
		line, err := rd.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, err
		}
		cmd[i] = string(buf[:size])
	}
	return cmd, nil
}

// newClient returns a go-redis client for addr with go-redis's own retries
// off and the policy's hook installed.
func newClient(t *testing.T, addr string, pol interface{ Hook() redis.Hook }, tweak ...func(*redis.Options)) *redis.Client {
	t.Helper()
	opt := &redis.Options{
		Addr:                     addr,
		Protocol:                 2,
		MaxRetries:               -1,
		DialerRetries:            1,
		DialTimeout:              time.Second,
		ReadTimeout:              200 * time.Millisecond,
		WriteTimeout:             time.Second,
		PoolSize:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	for _, f := range tweak {
		f(opt)
	}
	c := redis.NewClient(opt)
	c.AddHook(pol.Hook())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ctx returns a context for one test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
