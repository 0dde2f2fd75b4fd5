package sch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// endpointTypes are the values of CLIENT MAINT_NOTIFICATIONS ON
// moving-endpoint-type that Redis defines (go-redis's
// maintnotifications.EndpointType less "auto", which a client resolves to
// one of these before asking).
var endpointTypes = []string{"internal-ip", "internal-fqdn", "external-ip", "external-fqdn", "none"}

// Endpoint is where a MOVING sends clients. A server announces it in the
// form each connection asked for: an IP address or a name, internal or
// external. Addr is one address for every form (converted: a name is
// resolved for the IP forms, an IP looked up for the name forms, and kept
// as it is when that fails); Forms gives some or all forms explicitly,
// keyed by endpoint type. The zero Endpoint means "this address, later"
// (a null endpoint for connections that asked for "none", the address
// they connected to otherwise).
type Endpoint struct {
	Addr  string
	Forms map[string]string
}

// ParseEndpoint parses "host:port", "none" (or "", the zero Endpoint), or
// a comma-separated list of TYPE=host:port with TYPE an endpoint type
// other than "none" ("internal-ip=10.0.0.5:6391,external-fqdn=b.example.com:6391").
func ParseEndpoint(s string) (Endpoint, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "none") {
		return Endpoint{}, nil
	}
	if !strings.Contains(s, "=") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return Endpoint{}, fmt.Errorf("endpoint %q: %w", s, err)
		}
		return Endpoint{Addr: s}, nil
	}
	ep := Endpoint{Forms: map[string]string{}}
	for _, part := range strings.Split(s, ",") {
		typ, addr, _ := strings.Cut(strings.TrimSpace(part), "=")
		typ = strings.ToLower(typ)
		if !slices.Contains(endpointTypes, typ) || typ == "none" {
			return Endpoint{}, fmt.Errorf("endpoint %q: unknown form %q (one of internal-ip, internal-fqdn, external-ip, external-fqdn)", s, typ)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return Endpoint{}, fmt.Errorf("endpoint %q: %s: %w", s, typ, err)
		}
		ep.Forms[typ] = addr
	}
	return ep, nil
}

// IsZero reports whether the endpoint is "this address, later".
func (e Endpoint) IsZero() bool { return e.Addr == "" && len(e.Forms) == 0 }

// String shows the endpoint as ParseEndpoint reads it.
func (e Endpoint) String() string {
	if e.IsZero() {
		return "none (this address, later)"
	}
	if e.Addr != "" {
		return e.Addr
	}
	parts := make([]string, 0, len(e.Forms))
	for _, t := range endpointTypes {
		if a, ok := e.Forms[t]; ok {
			parts = append(parts, t+"="+a)
		}
	}
	return strings.Join(parts, ",")
}

// addrs lists every address the endpoint names.
func (e Endpoint) addrs() []string {
	out := make([]string, 0, 1+len(e.Forms))
	if e.Addr != "" {
		out = append(out, e.Addr)
	}
	for _, t := range endpointTypes {
		if a, ok := e.Forms[t]; ok {
			out = append(out, a)
		}
	}
	return out
}

// lookupTimeout bounds the DNS lookups that convert an endpoint's form.
const lookupTimeout = 2 * time.Second

// endpointFor returns the address of m's endpoint in the form typ (""
// meaning the form it was given in) for a connection that reached the
// proxy at local, or "" for a null endpoint (only for typ "none"). Results
// are cached per MOVING, so a broadcast looks each form up once.
func (p *Proxy) endpointFor(m *movingState, typ, local string) string {
	if typ == "none" {
		return ""
	}
	base := ""
	switch {
	case m.target.Forms[typ] != "":
		return m.target.Forms[typ]
	case m.target.IsZero():
		base = local // "this address": the one the client reached
	case m.target.Addr != "":
		base = m.target.Addr
	default:
		// Another form of the same kind, else any.
		kind := strings.TrimPrefix(strings.TrimPrefix(typ, "internal-"), "external-")
		for _, t := range endpointTypes {
			if a := m.target.Forms[t]; a != "" && (base == "" || strings.HasSuffix(t, kind)) {
				base = a
			}
		}
	}
	if typ == "" {
		return base
	}
	key := typ + " " + base
	m.mu.Lock()
	got, ok := m.forms[key]
	m.mu.Unlock()
	if ok {
		return got
	}
	got = convertEndpoint(base, strings.HasSuffix(typ, "-ip"))
	if got == base && isIP(base) != strings.HasSuffix(typ, "-ip") {
		p.opts.Logger.Warn("cannot convert the MOVING endpoint to the form a client asked for; sending it as it is", "endpoint", base, "endpoint_type", typ)
	}
	m.mu.Lock()
	m.forms[key] = got
	m.mu.Unlock()
	return got
}

// isIP reports whether addr's host is an IP address.
func isIP(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	_, err = netip.ParseAddr(host)
	return err == nil
}

// convertEndpoint returns addr with its host as an IP address (wantIP) or
// as a name, looking it up if needed; addr unchanged when the lookup
// fails. Unspecified addresses (a proxy listening on 0.0.0.0) become
// loopback ones.
func convertEndpoint(addr string, wantIP bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	ip, ipErr := netip.ParseAddr(host)
	if ipErr == nil && ip.IsUnspecified() {
		if ip.Is4() {
			ip = netip.MustParseAddr("127.0.0.1")
		} else {
			ip = netip.IPv6Loopback()
		}
		host = ip.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	switch {
	case wantIP && ipErr != nil:
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil || len(ips) == 0 {
			return addr
		}
		best := ips[0]
		for _, a := range ips {
			if a.Unmap().Is4() {
				best = a.Unmap()
				break
			}
		}
		return net.JoinHostPort(best.String(), port)
	case !wantIP && ipErr == nil:
		names, err := net.DefaultResolver.LookupAddr(ctx, host)
		if err != nil || len(names) == 0 {
			return net.JoinHostPort(host, port)
		}
		return net.JoinHostPort(strings.TrimSuffix(names[0], "."), port)
	}
	return net.JoinHostPort(host, port)
}
