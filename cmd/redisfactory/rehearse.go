package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redisfactory/redisfactory/sch"
)

// rehearseInput is where rehearse reads its commands (tests replace it).
var rehearseInput io.Reader = os.Stdin

const rehearseHelp = `commands, one per line:
  moving HOST:PORT SECONDS   the endpoint moves to HOST:PORT within SECONDS
  moving none SECONDS        the endpoint moves; reconnect to the same address after SECONDS/2
  migrating | migrated       a shard migration starts | ends (timeouts relaxed | restored)
  failing_over | failed_over a failover starts | ends (timeouts relaxed | restored)
  cut                        close every client connection now
  clients                    list the client connections and what they did
  help | quit`

// runRehearse runs a maintenance proxy and sends the notifications typed
// on standard input to the clients that negotiated them.
func runRehearse(c *cli, args []string) int {
	fs := c.flagSet("rehearse")
	listen := fs.String("listen", "127.0.0.1:6390", "`ADDR` to listen on; point the profile's addr here")
	upstream := fs.String("upstream", "", "`ADDR` of the real server behind the proxy (required)")
	noCut := fs.Bool("no-auto-cut", false, "keep connections open after a MOVING's time has passed (by default they are cut, as a server would)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if *upstream == "" {
		return c.usageError(fs, "missing --upstream: the address of the server behind the proxy")
	}
	if len(pos) > 0 {
		return c.usageError(fs, "unexpected argument %q", pos[0])
	}
	logger := slog.New(slog.NewTextHandler(c.stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.String("time", a.Value.Time().Format("15:04:05.000"))
			}
			return a
		},
	}))
	p := sch.NewProxyWithOptions(*listen, *upstream, sch.ProxyOptions{Logger: logger, NoAutoCut: *noCut})
	if err := p.Start(); err != nil {
		fmt.Fprintf(c.stderr, "rehearse: %v\n", err)
		return exitFailed
	}
	defer p.Close()
	fmt.Fprintln(c.stdout, rehearseHelp)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(rehearseInput)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	var reports []*time.Timer
	defer func() {
		for _, t := range reports {
			t.Stop()
		}
	}()
	for {
		var line string
		select {
		case <-ctx.Done():
			return exitOK
		case l, more := <-lines:
			if !more {
				return exitOK
			}
			line = l
		}
		f := strings.Fields(strings.ToLower(line))
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "moving":
			if len(f) != 3 {
				fmt.Fprintln(c.stderr, "usage: moving HOST:PORT|none SECONDS")
				continue
			}
			secs, err := strconv.Atoi(f[2])
			if err != nil || secs < 0 {
				fmt.Fprintf(c.stderr, "moving: SECONDS must be a whole number of seconds, got %q\n", f[2])
				continue
			}
			endpoint := strings.Fields(line)[1] // keep the host's case
			start := time.Now()
			p.Moving(endpoint, secs)
			reports = append(reports, time.AfterFunc(time.Duration(secs)*time.Second+100*time.Millisecond, func() {
				reportMoving(c.stdout, p, start)
			}))
		case "migrating":
			p.Migrating()
		case "migrated":
			p.Migrated()
		case "failing_over":
			p.FailingOver()
		case "failed_over":
			p.FailedOver()
		case "cut":
			p.Cut()
		case "clients":
			printClients(c.stdout, p.Clients())
		case "help":
			fmt.Fprintln(c.stdout, rehearseHelp)
		case "quit", "exit":
			return exitOK
		default:
			fmt.Fprintf(c.stderr, "unknown command %q (type help)\n", f[0])
		}
	}
}

// reportMoving prints, once a MOVING's time is over, what every client
// told to move did.
func reportMoving(w io.Writer, p *sch.Proxy, since time.Time) {
	moved, stayed := 0, 0
	for _, ci := range p.Clients() {
		if !ci.Moving {
			continue
		}
		if ci.Left {
			moved++
			fmt.Fprintf(w, "client %d (%s): reconnected to the new endpoint %s after the MOVING\n", ci.ID, ci.Addr, ci.LeftAfter.Round(time.Millisecond))
		} else {
			stayed++
			state := "still connected to the old endpoint"
			if ci.Cut {
				state = "did not move; its connection was cut"
			}
			fmt.Fprintf(w, "client %d (%s): %s\n", ci.ID, ci.Addr, state)
		}
	}
	fmt.Fprintf(w, "MOVING sent %s ago: %d connection(s) moved, %d did not\n", time.Since(since).Round(time.Millisecond), moved, stayed)
}

func printClients(w io.Writer, cs []sch.ClientInfo) {
	if len(cs) == 0 {
		fmt.Fprintln(w, "no client connections yet")
	}
	for _, ci := range cs {
		state := "open"
		switch {
		case ci.Left:
			state = "moved after " + ci.LeftAfter.Round(time.Millisecond).String()
		case ci.Cut:
			state = "cut"
		case !ci.Open:
			state = "closed"
		}
		neg := "no notifications"
		if ci.Negotiated {
			neg = "notifications (" + ci.EndpointType + ")"
		}
		fmt.Fprintf(w, "client %d %s: %s, %s, received [%s]\n", ci.ID, ci.Addr, state, neg, strings.Join(ci.Notifications, " "))
	}
}
