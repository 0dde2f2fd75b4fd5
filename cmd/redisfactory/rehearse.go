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
  moving HOST:PORT SECONDS   the endpoint moves to HOST:PORT within SECONDS (each connection gets it
                             in the form it negotiated: internal/external IP or name)
  moving TYPE=HOST:PORT,... SECONDS
                             the same, each form given (internal-ip, external-ip, internal-fqdn, external-fqdn)
  moving peer SECONDS        the endpoint moves to the --peer-listen proxy
  moving none SECONDS        the endpoint moves; reconnect to the same address after SECONDS/2
  migrating | migrated       a shard migration starts | ends (timeouts relaxed | restored)
  failing_over | failed_over a failover starts | ends (timeouts relaxed | restored)
  cut                        close every client connection now
  clients                    list the client connections (open, and the last closed) and what they did
  help | quit`

// runRehearse runs a maintenance proxy and sends the notifications typed
// on standard input to the clients that negotiated them.
func runRehearse(c *cli, args []string) int {
	fs := c.flagSet("rehearse")
	listen := fs.String("listen", "127.0.0.1:6390", "`ADDR` to listen on; point the profile's addr here")
	upstream := fs.String("upstream", "", "`ADDR` of the real server behind the proxy (required)")
	noCut := fs.Bool("no-auto-cut", false, "keep connections open after a MOVING's time has passed (by default they are cut, as a server would)")
	peerListen := fs.String("peer-listen", "", "`ADDR` of a second proxy, the new endpoint of 'moving peer': the report then counts the connections that arrive there")
	peerUpstream := fs.String("peer-upstream", "", "`ADDR` of the real server behind the second proxy (required with --peer-listen)")
	maxConns := fs.Int("max-conns", sch.DefaultMaxConns, "at most `N` open client connections per proxy; more are refused as Redis refuses past maxclients (0: no cap)")
	idle := fs.Duration("idle-timeout", sch.DefaultIdleTimeout, "close a client connection silent for `D` while it waits for no reply and is not subscribed (0: never)")
	maxArgs := fs.Int("max-args", sch.DefaultMaxArgs, "at most `N` arguments per command; a client announcing more gets Redis's \"invalid multibulk length\" error and is closed (0: the proxy's bound, 2^24)")
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
	if (*peerListen == "") != (*peerUpstream == "") {
		return c.usageError(fs, "--peer-listen and --peer-upstream go together")
	}
	if *maxConns < 0 || *idle < 0 || *maxArgs < 0 {
		return c.usageError(fs, "--max-conns, --idle-timeout and --max-args must not be negative")
	}
	logger := slog.New(slog.NewTextHandler(c.stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.String("time", a.Value.Time().Format("15:04:05.000"))
			}
			return a
		},
	}))
	opts := sch.ProxyOptions{Logger: logger, NoAutoCut: *noCut, MaxConns: *maxConns, IdleTimeout: *idle, MaxArgs: *maxArgs}
	// 0 on the command line means "no limit"; in ProxyOptions, "default".
	if *maxConns == 0 {
		opts.MaxConns = -1
	}
	if *idle == 0 {
		opts.IdleTimeout = -1
	}
	if *maxArgs == 0 {
		opts.MaxArgs = -1
	}
	p := sch.NewProxyWithOptions(*listen, *upstream, opts)
	if err := p.Start(); err != nil {
		fmt.Fprintf(c.stderr, "rehearse: %v\n", err)
		return exitFailed
	}
	defer p.Close()
	var peer *sch.Proxy
	if *peerListen != "" {
		peerOpts := opts
		peerOpts.Logger = logger.With("proxy", "peer")
		peer = sch.NewProxyWithOptions(*peerListen, *peerUpstream, peerOpts)
		if err := peer.Start(); err != nil {
			fmt.Fprintf(c.stderr, "rehearse: peer: %v\n", err)
			return exitFailed
		}
		defer peer.Close()
		p.AddPeer(peer)
	}
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
			if f[1] == "peer" {
				if peer == nil {
					fmt.Fprintln(c.stderr, "moving peer: no --peer-listen proxy")
					continue
				}
				endpoint = peer.Addr()
			}
			ep, err := sch.ParseEndpoint(endpoint)
			if err != nil {
				fmt.Fprintf(c.stderr, "moving: %v\n", err)
				continue
			}
			p.MovingTo(ep, secs)
			reports = append(reports, time.AfterFunc(time.Duration(secs)*time.Second+100*time.Millisecond, func() {
				reportMoving(c.stdout, p)
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
			printClients(c.stdout, "", p.Clients())
			if peer != nil {
				printClients(c.stdout, "peer ", peer.Clients())
			}
		case "help":
			fmt.Fprintln(c.stdout, rehearseHelp)
		case "quit", "exit":
			return exitOK
		default:
			fmt.Fprintf(c.stderr, "unknown command %q (type help)\n", f[0])
		}
	}
}

// reportMoving prints, once a MOVING's time is over, what came of it: a
// connection counts as moved only when it arrived at the new endpoint,
// which the proxy knows when the endpoint is its peer (or itself, for
// "none").
func reportMoving(w io.Writer, p *sch.Proxy) {
	r, ok := p.MovingReport()
	if !ok {
		return
	}
	for _, ci := range p.Clients() {
		if ci.Moving && ci.Cut {
			fmt.Fprintf(w, "client %d (%s): did not leave before the announced time; its connection was cut\n", ci.ID, ci.Addr)
		}
	}
	fmt.Fprintf(w, "MOVING %d to %s sent %s ago to %d connection(s): %d closed by the client before the deadline, %d cut, %d still open\n",
		r.Seq, r.Endpoint, time.Since(r.Sent).Round(time.Millisecond), r.Told, r.Closed, r.Cut, r.Open)
	if r.Arrived < 0 {
		fmt.Fprintln(w, "arrivals at the new endpoint: unknown (it is not a proxy of this rehearsal; use --peer-listen and 'moving peer')")
		return
	}
	fmt.Fprintf(w, "arrived at the new endpoint: %d connection(s), %d of them negotiated notifications\n", r.Arrived, r.ArrivedNegotiated)
}

func printClients(w io.Writer, prefix string, cs []sch.ClientInfo) {
	if len(cs) == 0 {
		fmt.Fprintln(w, prefix+"no client connections")
	}
	for _, ci := range cs {
		state := "open"
		switch {
		case ci.Left:
			state = "closed " + ci.LeftAfter.Round(time.Millisecond).String() + " after MOVING"
		case ci.Cut:
			state = "cut"
		case !ci.Open:
			state = "closed"
		}
		neg := "no notifications"
		if ci.Negotiated {
			typ := ci.EndpointType
			if typ == "" {
				typ = "no endpoint type"
			}
			neg = "notifications (" + typ + ")"
		}
		fmt.Fprintf(w, "%sclient %d %s: %s, %s, received [%s]\n", prefix, ci.ID, ci.Addr, state, neg, strings.Join(ci.Notifications, " "))
	}
}
