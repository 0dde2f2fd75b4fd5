package fastcmd

import (
	"bufio"
	"context"
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

// scriptServer is a TCP server on 127.0.0.1 that answers HELLO the way a
// server without HELLO would (or, for protocol 3, with a minimal HELLO map)
// and every other command with the scripted reply, recording each command's
// raw bytes. It is the reference: a plain go-redis client reading from it
// is "go-redis reading the frame".
type scriptServer struct {
	ln    net.Listener
	mu    sync.Mutex
	reply []byte
	cmds  [][]byte
	wg    sync.WaitGroup
	conns map[net.Conn]struct{}
}

func newScriptServer(t *testing.T) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &scriptServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *scriptServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *scriptServer) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *scriptServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		raw, args, err := readCommand(br)
		if err != nil {
			return
		}
		var out []byte
		if strings.EqualFold(args[0], "hello") {
			if len(args) > 1 && args[1] == "3" {
				out = []byte("%1\r\n$5\r\nproto\r\n:3\r\n")
			} else {
				out = []byte("-ERR unknown command 'HELLO'\r\n")
			}
		} else {
			s.mu.Lock()
			s.cmds = append(s.cmds, raw)
			out = s.reply
			s.mu.Unlock()
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

func (s *scriptServer) setReply(frame []byte) {
	s.mu.Lock()
	s.reply = frame
	s.cmds = nil
	s.mu.Unlock()
}

func (s *scriptServer) commands() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.cmds...)
}

// readCommand reads one RESP array of bulk strings (what clients send) and
// returns its raw bytes and its arguments.
func readCommand(br *bufio.Reader) (raw []byte, args []string, err error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, nil, err
	}
	raw = append(raw, line...)
	if !strings.HasPrefix(line, "*") || !strings.HasSuffix(line, "\r\n") {
		return nil, nil, fmt.Errorf("bad array header %q", line)
	}
	n, err := strconv.Atoi(line[1 : len(line)-2])
	if err != nil || n < 1 {
		return nil, nil, fmt.Errorf("bad array header %q", line)
	}
	for range n {
		hdr, err := br.ReadString('\n')
		if err != nil {
			return nil, nil, err
		}
		raw = append(raw, hdr...)
		if !strings.HasPrefix(hdr, "$") || !strings.HasSuffix(hdr, "\r\n") {
			return nil, nil, fmt.Errorf("bad bulk header %q", hdr)
		}
		m, err := strconv.Atoi(hdr[1 : len(hdr)-2])
		if err != nil || m < 0 {
			return nil, nil, fmt.Errorf("bad bulk header %q", hdr)
		}
		body := make([]byte, m+2)
		if _, err := io.ReadFull(br, body); err != nil {
			return nil, nil, err
		}
		raw = append(raw, body...)
		args = append(args, string(body[:m]))
	}
	return raw, args, nil
}

// newRefClient is a plain go-redis client of s, as a user would configure it
// (apart from retries, which would re-send and re-read the scripted reply).
func newRefClient(t *testing.T, s *scriptServer, protocol int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                     s.ln.Addr().String(),
		Protocol:                 protocol,
		DisableIdentity:          true,
		MaxRetries:               -1,
		ReadTimeout:              2 * time.Second,
		WriteTimeout:             2 * time.Second,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// refProcess runs cmd on a fresh reference client against frame and returns
// the raw command bytes the server received.
func refProcess(t *testing.T, s *scriptServer, protocol int, cmd redis.Cmder, frame []byte) []byte {
	t.Helper()
	s.setReply(frame)
	c := newRefClient(t, s, protocol)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Process(ctx, cmd)
	_ = c.Close()
	cmds := s.commands()
	require.Len(t, cmds, 1, "reference server should see exactly one command")
	return cmds[0]
}
