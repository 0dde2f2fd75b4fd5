package respproxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redisfactory/redisfactory/internal/resp"
)

// bigServer answers every command with a 1 MB bulk string. Like Redis
// (whose output buffers for ordinary clients have no limit), it reads
// commands whether or not its replies are read, so that received counts
// what a proxy forwarded.
func bigServer(t *testing.T) (addr string, received *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	received = new(atomic.Int64)
	reply := []byte("$1048576\r\n" + strings.Repeat("v", 1<<20) + "\r\n")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			replies := make(chan struct{}, 100000)
			go func() {
				defer c.Close()
				for range replies {
					if _, err := c.Write(reply); err != nil {
						return
					}
				}
			}()
			go func() {
				defer close(replies)
				r := bufio.NewReader(c)
				for {
					if _, _, err := resp.ReadCommand(r); err != nil {
						return
					}
					received.Add(1)
					replies <- struct{}{}
				}
			}()
		}
	}()
	return ln.Addr().String(), received
}

func serveTest(t *testing.T, cfg Config) (*Proxy, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := Serve(ln, cfg)
	t.Cleanup(func() { _ = p.Close() })
	return p, ln.Addr().String()
}

// A client that asks for 200 MB of replies and does not read them makes
// the proxy hold about MaxQueued bytes for it, and forward no more than
// MaxInFlight commands, so that the server does not hold 200 MB for it
// either; when it reads, every reply arrives whole, in order.
func TestBackpressure(t *testing.T) {
	upstream, received := bigServer(t)
	opened := make(chan *Conn, 1)
	_, addr := serveTest(t, Config{
		Dial: func() (net.Conn, error) { return net.Dial("tcp", upstream) },
		Open: func(c *Conn) any { opened <- c; return nil },
	})
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	const n = 200
	var cmds []byte
	for range n {
		cmds = append(cmds, resp.Command("GET", "big")...)
	}
	if _, err := client.Write(cmds); err != nil {
		t.Fatal(err)
	}
	c := <-opened
	// Watch the queue while the server's replies pile up against it.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if q := c.Queued(); q > MaxQueued+(64<<10) {
			t.Fatalf("%d bytes queued for a client that does not read (bound %d)", q, MaxQueued)
		}
	}
	// The first MaxInFlight, then one more per reply the proxy took in
	// (its queue, and the socket buffers towards the client).
	if got := received.Load(); got > MaxInFlight+32 {
		t.Fatalf("the server received %d of the %d commands of a client that does not read (bound %d + replies in socket buffers)", got, n, MaxInFlight)
	} else {
		t.Logf("the server received %d of the %d commands of a client that does not read", got, n)
	}
	r := bufio.NewReaderSize(client, 1<<16)
	_ = client.SetReadDeadline(time.Now().Add(60 * time.Second))
	for i := range n {
		f, _, err := resp.ReadFrame(r, nil)
		if err != nil || len(f) != 1<<20+len("$1048576\r\n\r\n") {
			t.Fatalf("reply %d: %d bytes, %v", i, len(f), err)
		}
	}
}

// MaxConns refuses connections past the cap with Redis's words;
// IdleTimeout closes a silent connection but not one waiting for a reply.
func TestMaxConnsAndIdleTimeout(t *testing.T) {
	upstream := echoServer(t)
	refused := make(chan string, 10)
	p, addr := serveTest(t, Config{
		Dial:        func() (net.Conn, error) { return net.Dial("tcp", upstream) },
		MaxConns:    2,
		IdleTimeout: time.Second,
		Refused:     func(_ net.Addr, reason string) { refused <- reason },
	})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	a, b := dial(), dial()
	for deadline := time.Now().Add(5 * time.Second); p.Len() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("two connections not served")
		}
	}
	third := dial()
	_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := bufio.NewReader(third).ReadString('\n')
	if got != RefusedReply {
		t.Fatalf("third connection read %q, want %q", got, RefusedReply)
	}
	if r := <-refused; r != "max connections" {
		t.Fatalf("refused for %q", r)
	}
	// a stays silent; b keeps talking every 100 ms, well within the idle
	// timeout even on a busy machine.
	br := bufio.NewReader(b)
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond {
		if _, err := b.Write(resp.Command("PING")); err != nil {
			t.Fatal(err)
		}
		_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
		if f, _, err := resp.ReadFrame(br, nil); err != nil || string(f) != "+PING\r\n" {
			t.Fatalf("active connection: %q, %v", f, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err == nil {
		t.Fatal("the silent connection is still open")
	}
	if r := <-refused; r != "idle" {
		t.Fatalf("closed for %q", r)
	}
}

// AtTurn runs after the replies to the commands before it, so that a local
// answer can depend on them (a HELLO pipelined before a handshake).
func TestAtTurnWaitsForEarlierReplies(t *testing.T) {
	upstream := echoServer(t) // answers slowly
	_, addr := serveTest(t, Config{
		Dial: func() (net.Conn, error) { return net.Dial("tcp", upstream) },
		Handle: func(c *Conn, cmd []string) bool {
			if cmd[0] != "LOCAL" {
				return false
			}
			c.AtTurn(func() { c.Send([]byte("+turn\r\n")) })
			c.Reply([]byte("+after\r\n"))
			return true
		},
	})
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var pipeline []byte
	for _, name := range []string{"A", "B", "LOCAL", "C"} {
		pipeline = append(pipeline, resp.Command(name)...)
	}
	if _, err := client.Write(pipeline); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(client)
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"+A\r\n", "+B\r\n", "+turn\r\n", "+after\r\n", "+C\r\n"} {
		f, _, err := resp.ReadFrame(r, nil)
		if err != nil || string(f) != want {
			t.Fatalf("got %q (%v), want %q", f, err, want)
		}
	}
}

// A command announcing more than MaxArgs arguments is answered with
// Redis's words and the connection closed, before anything reaches the
// server; the numbers go to Refused.
func TestMaxArgs(t *testing.T) {
	upstream, received := bigServer(t)
	refused := make(chan string, 1)
	_, addr := serveTest(t, Config{
		Dial:    func() (net.Conn, error) { return net.Dial("tcp", upstream) },
		MaxArgs: 1 << 20,
		Refused: func(_ net.Addr, reason string) { refused <- reason },
	})
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("*16777216\r\n$1\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(client)
	if string(got) != "-ERR Protocol error: invalid multibulk length\r\n" || err != nil {
		t.Fatalf("read %q, %v; want Redis's error, then the end of the connection", got, err)
	}
	if r := <-refused; !strings.Contains(r, "16777216 arguments (at most 1048576)") {
		t.Fatalf("refused for %q", r)
	}
	if n := received.Load(); n != 0 {
		t.Fatalf("the server received %d commands", n)
	}
}
