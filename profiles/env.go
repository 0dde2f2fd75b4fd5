package profiles

import (
	"strings"

	"github.com/knadh/koanf/providers/env/v2"
)

// envSeparator separates the prefix from the key path, and the levels of
// the key path, in environment variable names. A single underscore stays
// inside a key name (pool_size), so APP_REDIS__PROFILES__SESSIONS__POOL__MIN_IDLE
// is profiles.sessions.pool.min_idle.
const envSeparator = "__"

// parseEnv reads the variables that start with prefix + "__" through koanf's
// env provider. Names are lower-cased; a profile name is matched without
// regard to case against the profiles the files define, so that a profile
// called "Sessions" can still be addressed.
func parseEnv(prefix string, environ func() []string, profileNames []string) (*parsed, error) {
	p := &parsed{name: "environment", kind: originEnv, envs: map[string]string{}}
	full := prefix + envSeparator
	byLower := map[string]string{}
	for _, n := range profileNames {
		byLower[strings.ToLower(n)] = n
	}
	prov := env.Provider(".", env.Opt{
		Prefix:      full,
		EnvironFunc: environ,
		TransformFunc: func(name, value string) (string, any) {
			rest := strings.TrimPrefix(name, full)
			if rest == "" {
				return "", nil
			}
			parts := strings.Split(strings.ToLower(rest), envSeparator)
			for _, part := range parts {
				if part == "" || strings.Contains(part, ".") {
					return "", nil // APP__X____Y or dotted names: not a key path
				}
			}
			if len(parts) >= 2 && parts[0] == "profiles" {
				if n, ok := byLower[parts[1]]; ok {
					parts[1] = n
				}
			}
			key := strings.Join(parts, ".")
			p.envs[key] = name
			return key, envValue(value)
		},
	})
	tree, err := prov.Read()
	if err != nil {
		return nil, err
	}
	p.tree = normalize(tree).(map[string]any)
	return p, nil
}

// envString marks a value that came from the environment as text, so that
// the decoder may convert it to the key's type (a number, a duration, a
// boolean, a comma-separated list). Values from YAML are never converted.
type envString string

func envValue(s string) any { return envString(s) }
