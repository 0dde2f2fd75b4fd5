package respproxy

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redisfactory/redisfactory/internal/resp"
)

// echoServer answers every command with "+NAME\r\n", slowly, so that local
// replies have to wait for it.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					args, _, err := resp.ReadCommand(r)
					if err != nil {
						return
					}
					time.Sleep(5 * time.Millisecond)
					if _, err := c.Write([]byte("+" + args[0] + "\r\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A local reply keeps its place in a pipeline, Rewrite sees the command its
// reply answers, and Send goes out at once.
func TestOrdering(t *testing.T) {
	upstream := echoServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var observed []string
	opened := make(chan *Conn, 1)
	p := Serve(ln, Config{
		Dial:    func() (net.Conn, error) { return net.Dial("tcp", upstream) },
		Open:    func(c *Conn) any { opened <- c; return "state" },
		Observe: func(cmd []string) { observed = append(observed, cmd[0]) },
		Handle: func(c *Conn, cmd []string) bool {
			if cmd[0] != "LOCAL" {
				return false
			}
			c.Reply([]byte("+local\r\n"))
			return true
		},
		Rewrite: func(cmd []string, reply []byte) []byte {
			return []byte(strings.ToLower(string(reply)))
		},
	})
	t.Cleanup(func() { _ = p.Close() })

	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	r := bufio.NewReader(client)
	read := func() string {
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		f, _, err := resp.ReadFrame(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(f)
	}
	var pipeline []byte
	for _, name := range []string{"A", "LOCAL", "B"} {
		pipeline = append(pipeline, resp.Command(name)...)
	}
	if _, err := client.Write(pipeline); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+a\r\n", "+local\r\n", "+b\r\n"} {
		if got := read(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if strings.Join(observed, " ") != "A LOCAL B" {
		t.Fatalf("observed %q", observed)
	}

	c := <-opened
	if c.State() != "state" || p.Len() != 1 {
		t.Fatalf("state %v, %d conns", c.State(), p.Len())
	}
	if !c.Send([]byte(">1\r\n$4\r\npush\r\n")) {
		t.Fatal("Send on an open connection failed")
	}
	if got := read(); got != ">1\r\n$4\r\npush\r\n" {
		t.Fatalf("got %q", got)
	}
	c.Close()
	if c.Send([]byte("+late\r\n")) || p.Len() != 0 {
		t.Fatal("a closed connection still takes frames or is still listed")
	}
}

// A local reply never overtakes the server reply it waits for, even when
// the local command arrives after that reply has begun: the command the
// reply answers has then left the queue of awaited replies, but its reply
// is not queued for the client yet. (The sch proxy's handshake answer came
// before the last CLIENT SETINFO error, 3 to 5 times in 30 runs under
// -race; here the server sends B's reply in two parts, 50ms apart, and
// Rewrite, which reads a reply whole, widens the window.)
func TestLocalReplyAfterAReplyBegan(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					args, _, err := resp.ReadCommand(r)
					if err != nil {
						return
					}
					reply := "$1\r\n" + args[0] + "\r\n"
					if args[0] == "B" {
						_, _ = c.Write([]byte(reply[:3]))
						time.Sleep(50 * time.Millisecond)
						reply = reply[3:]
					}
					if _, err := c.Write([]byte(reply)); err != nil {
						return
					}
				}
			}()
		}
	}()
	for _, mode := range []string{"AtTurn", "Reply"} {
		t.Run(mode, func(t *testing.T) {
			pln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			p := Serve(pln, Config{
				Dial: func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) },
				Handle: func(c *Conn, cmd []string) bool {
					if cmd[0] != "LOCAL" {
						return false
					}
					if mode == "AtTurn" {
						c.AtTurn(func() { c.Send([]byte("+local\r\n")) })
					} else {
						c.Reply([]byte("+local\r\n"))
					}
					return true
				},
				Rewrite: func(_ []string, reply []byte) []byte { return reply },
			})
			t.Cleanup(func() { _ = p.Close() })
			client, err := net.Dial("tcp", pln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if _, err := client.Write(append(resp.Command("A"), resp.Command("B")...)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(25 * time.Millisecond) // B's reply has begun; not a synchronisation
			if _, err := client.Write(resp.Command("LOCAL")); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(client)
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			for _, want := range []string{"$1\r\nA\r\n", "$1\r\nB\r\n", "+local\r\n"} {
				f, _, err := resp.ReadFrame(r, nil)
				if err != nil {
					t.Fatal(err)
				}
				if string(f) != want {
					t.Fatalf("got %q, want %q", f, want)
				}
			}
		})
	}
}
