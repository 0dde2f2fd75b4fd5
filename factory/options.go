package factory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/internal/safefile"
	"github.com/redisfactory/redisfactory/schema"
)

// tlsConfig builds the TLS configuration of a profile, or nil without TLS.
func tlsConfig(p *schema.Profile) (*tls.Config, error) {
	t := p.TLS
	if !t.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // an explicit, documented profile choice
		MinVersion:         tls.VersionTLS12,
	}
	if t.MinVersion == "1.3" {
		cfg.MinVersion = tls.VersionTLS13
	}
	if t.CAFile != "" {
		pem, err := safefile.Read(t.CAFile, maxTLSFileSize)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate found", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := loadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// maxTLSFileSize caps what the factory reads of a TLS file. The loader
// has already read the file under its own (configurable) limit; this cap
// only keeps a file swapped for /dev/zero or a huge file after loading
// from exhausting memory.
const maxTLSFileSize = 16 << 20

// loadKeyPair is tls.LoadX509KeyPair reading through safefile, so that a
// FIFO or a device in place of a certificate cannot block or exhaust a
// build.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := safefile.Read(certFile, maxTLSFileSize)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := safefile.Read(keyFile, maxTLSFileSize)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// common holds the options every mode shares that do not come from the
// profile alone.
type common struct {
	dialer      func(ctx context.Context, network, addr string) (net.Conn, error)
	sockets     dialFunc                // the sockets under dialer, unwrapped
	virtual     func(dialFunc) dialFunc // wraps virtual connections as dialer wraps sockets
	tls         *tls.Config
	read, write time.Duration
	onConnect   func(ctx context.Context, cn *redis.Conn) error
}

// universalOptions maps a profile onto go-redis's UniversalOptions, whose
// Simple, Failover and Cluster methods give each mode's options: the keys
// the modes share are mapped once, here.
func universalOptions(p *schema.Profile, c common) *redis.UniversalOptions {
	o := &redis.UniversalOptions{
		Dialer:     c.dialer,
		OnConnect:  c.onConnect,
		Protocol:   p.Protocol,
		Username:   p.Username,
		Password:   p.Password.Reveal(),
		DB:         p.DB,
		ClientName: p.ClientName,
		TLSConfig:  c.tls,

		// The profile's retry policy runs in a hook; go-redis's own retries
		// and dial retries are off so that the policy is exactly what the
		// profile says.
		MaxRetries:    -1,
		DialerRetries: 1,

		DialTimeout:           p.Timeouts.Connect,
		ReadTimeout:           c.read,
		WriteTimeout:          c.write,
		ContextTimeoutEnabled: true,

		PoolSize:        p.Pool.Size,
		MinIdleConns:    p.Pool.MinIdle,
		MaxIdleConns:    p.Pool.MaxIdle,
		MaxActiveConns:  p.Pool.MaxActive,
		PoolTimeout:     p.Pool.Timeout,
		ConnMaxIdleTime: p.Pool.ConnMaxIdleTime,
		ConnMaxLifetime: p.Pool.ConnMaxLifetime,

		MaintNotificationsConfig: maintConfig(p),
	}
	switch p.Mode {
	case schema.Cluster:
		o.Addrs = p.Addrs
		o.MaxRedirects = p.Cluster.MaxRedirects // 0: go-redis's default (3)
		o.ReadOnly = p.Cluster.ReadOnly
		o.RouteByLatency = p.Cluster.RouteByLatency
		o.RouteRandomly = p.Cluster.RouteRandomly
	case schema.Sentinel:
		o.Addrs = p.Sentinel.Addrs
		o.MasterName = p.Sentinel.MasterName
		o.SentinelUsername = p.Sentinel.Username
		o.SentinelPassword = p.Sentinel.Password.Reveal()
		o.ReadOnly = p.Sentinel.ReplicaOnly // Failover maps it to ReplicaOnly
	default:
		o.Addrs = []string{p.Addr}
	}
	return o
}

// standaloneOptions maps a standalone profile onto redis.Options.
func standaloneOptions(p *schema.Profile, c common) *redis.Options {
	o := universalOptions(p, c).Simple()
	o.Network = p.Network // a unix socket; UniversalOptions has no network
	return o
}

// failoverOptions maps a sentinel profile onto redis.FailoverOptions.
// Smart client handoffs on the master's connections are the factory's own
// (sch.Engine), as for every mode.
func failoverOptions(p *schema.Profile, c common) *redis.FailoverOptions {
	return universalOptions(p, c).Failover()
}

// clusterOptions maps a cluster profile onto redis.ClusterOptions.
func clusterOptions(p *schema.Profile, c common) *redis.ClusterOptions {
	return universalOptions(p, c).Cluster()
}
