package profiles_test

import (
	"errors"
	"testing"

	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/schema"
)

// FuzzLoad feeds arbitrary YAML to the loader: it must never panic, and it
// must either succeed with at least one profile or fail with schema.Issues.
// Seed corpus: testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"profiles:\n  a: {}\n",
		"defaults:\n  timeouts:\n    socket: 5s\nprofiles:\n  a:\n    extends: b\n  b:\n    db: 1\n",
		"profiles:\n  a:\n    mode: cluster\n    addrs: [\"[::1]:7000\"]\n    retry:\n      on: [connection, cluster_down]\n",
		"profiles:\n  a:\n    url: redis://u:p@h:1/2?dial_timeout=3\n",
		"x-a: &a {db: 1}\nprofiles:\n  p: *a\n",
		"profiles: [1, 2]\n",
		"profiles:\n  a:\n    cache: {enabled: true, max_bytes: 1KiB, commands: [get]}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := profiles.Load(profiles.Options{
			Sources:   []profiles.Source{profiles.Bytes("fuzz.yaml", data)},
			EnvPrefix: "FUZZ",
			Environ:   func() []string { return nil },
		})
		if err != nil {
			var is schema.Issues
			if !errors.As(err, &is) || len(is) == 0 {
				t.Fatalf("error is not a non-empty schema.Issues: %T %v", err, err)
			}
			return
		}
		if len(r.Config.Profiles) == 0 {
			t.Fatal("a valid configuration without profiles")
		}
		for name := range r.Config.Profiles {
			if _, err := r.Explain(name); err != nil {
				t.Fatal(err)
			}
		}
	})
}
