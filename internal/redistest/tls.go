package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles are PEM files generated for a TLS test server: a private CA, a
// server certificate valid for 127.0.0.1, ::1 and localhost, and a client
// certificate signed by the same CA.
type TLSFiles struct {
	// CAFile is the CA certificate.
	CAFile string
	// CertFile and KeyFile are the server certificate and key.
	CertFile string
	KeyFile  string
	// ClientCertFile and ClientKeyFile are the client certificate and key.
	ClientCertFile string
	ClientKeyFile  string

	caPool     *x509.CertPool
	clientCert tls.Certificate
}

// GenerateTLS creates a new CA, server and client certificates (ECDSA P-256,
// valid for 24h) as PEM files in dir, which is created if needed.
func GenerateTLS(t testing.TB, dir string) *TLSFiles {
	t.Helper()
	f, err := generateTLS(dir)
	if err != nil {
		t.Fatalf("redistest: generating TLS certificates: %v", err)
	}
	return f
}

// ClientConfig returns a new client configuration that trusts the CA and
// presents the client certificate. ServerName is left empty so that
// go-redis/crypto/tls verify the host of the dialed address (127.0.0.1).
func (f *TLSFiles) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      f.caPool,
		Certificates: []tls.Certificate{f.clientCert},
	}
}

func generateTLS(dir string) (*TLSFiles, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	leaf := func(cn string, server bool) (certDER []byte, key *ecdsa.PrivateKey, err error) {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if server {
			// Redis also uses the server certificate as client certificate
			// for replication and the cluster bus, hence ClientAuth too.
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}
		}
		certDER, err = x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		return certDER, key, err
	}
	srvDER, srvKey, err := leaf("redistest server", true)
	if err != nil {
		return nil, err
	}
	cliDER, cliKey, err := leaf("redistest client", false)
	if err != nil {
		return nil, err
	}

	f := &TLSFiles{
		CAFile:         filepath.Join(dir, "ca.crt"),
		CertFile:       filepath.Join(dir, "server.crt"),
		KeyFile:        filepath.Join(dir, "server.key"),
		ClientCertFile: filepath.Join(dir, "client.crt"),
		ClientKeyFile:  filepath.Join(dir, "client.key"),
		caPool:         x509.NewCertPool(),
	}
	f.caPool.AddCert(caCert)
	if err := writePEM(f.CAFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	if err := writePEM(f.CertFile, "CERTIFICATE", srvDER); err != nil {
		return nil, err
	}
	if err := writeKey(f.KeyFile, srvKey); err != nil {
		return nil, err
	}
	if err := writePEM(f.ClientCertFile, "CERTIFICATE", cliDER); err != nil {
		return nil, err
	}
	if err := writeKey(f.ClientKeyFile, cliKey); err != nil {
		return nil, err
	}
	f.clientCert, err = tls.LoadX509KeyPair(f.ClientCertFile, f.ClientKeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading generated client certificate: %w", err)
	}
	return f, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
