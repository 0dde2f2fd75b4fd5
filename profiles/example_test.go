package profiles_test

import (
	"errors"
	"fmt"

	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/schema"
)

// ExampleLoad loads profiles and reports every problem at once, each with
// the file and line that caused it. Sources hold YAML in memory; a service
// passes Paths (files or directories) instead.
func ExampleLoad() {
	const good = `
defaults:
  addr: redis.internal.example:6379
  timeouts: {socket: 500ms}
profiles:
  sessions:
    retry:
      retries: 3
      also_on: [busy_loading]
`
	res, err := profiles.Load(profiles.Options{
		Sources:   []profiles.Source{profiles.Bytes("redis.yaml", []byte(good))},
		EnvPrefix: "APP_REDIS", // APP_REDIS__PROFILES__SESSIONS__ADDR=... overrides
		Environ:   func() []string { return []string{"APP_REDIS__PROFILES__SESSIONS__TIMEOUTS__SOCKET=750ms"} },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := res.Config.Profiles["sessions"] // every default applied
	fmt.Println(s.Addr, s.Timeouts.Socket, s.Retry.Retries, s.RetryClasses())

	const bad = `
profiles:
  sessions:
    adress: localhost:6379
    timeouts: {socket: 5}
`
	_, err = profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("bad.yaml", []byte(bad))}})
	var issues schema.Issues
	if errors.As(err, &issues) {
		for _, is := range issues {
			fmt.Println(is)
		}
	}
	// Output:
	// redis.internal.example:6379 750ms 3 [connection timeout busy_loading]
	// bad.yaml:4: profiles.sessions.adress: unknown key
	// bad.yaml:5: profiles.sessions.timeouts.socket: a duration needs a unit, e.g. 5s or 5ms (got "5")
}
