package profiles_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redisfactory/redisfactory/profiles"
)

// BenchmarkLoad1000Profiles loads and validates one file of 1,000 profiles
// (with a defaults block, extends and varied keys).
func BenchmarkLoad1000Profiles(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("defaults:\n  timeouts:\n    connect: 2s\n    socket: 3s\n  retry:\n    retries: 2\nprofiles:\n  base:\n    pool:\n      size: 20\n")
	for i := range 999 {
		fmt.Fprintf(&sb, "  p%04d:\n    extends: base\n    addr: 10.0.%d.%d:6379\n    db: %d\n    client_name: svc-%d\n    retry:\n      also_on: [busy_loading]\n      backoff:\n        strategy: decorrelated_jitter\n        base: 5ms\n        cap: 500ms\n    health_check_interval: 3s\n", i, i/250, i%250, i%16, i)
	}
	path := filepath.Join(b.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := profiles.Load(profiles.Options{Paths: []string{path}})
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Config.Profiles) != 1000 {
			b.Fatalf("got %d profiles", len(r.Config.Profiles))
		}
	}
}
