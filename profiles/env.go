package profiles

import (
	"sort"
	"strings"

	"github.com/knadh/koanf/providers/env/v2"
)

// envSeparator separates the prefix from the key path, and the levels of
// the key path, in environment variable names. A single underscore stays
// inside a key name (pool_size), so APP_REDIS__PROFILES__SESSIONS__POOL__MIN_IDLE
// is profiles.sessions.pool.min_idle.
const envSeparator = "__"

// envUnknown is a variable that names a profile no file defines.
type envUnknown struct{ variable, profile string }

// parseEnv reads the variables that start with prefix + "__" through koanf's
// env provider. Names are lower-cased; a profile name is matched without
// regard to case against the profiles the files define, so that a profile
// called "Sessions" can still be addressed. A variable naming any other
// profile is returned in unknown (sorted by variable) and left out of the
// tree: a typo must not create a profile.
func parseEnv(prefix string, environ func() []string, known map[string]bool) (p *parsed, unknown []envUnknown, err error) {
	p = &parsed{name: "environment", kind: originEnv, envs: map[string]string{}}
	full := prefix + envSeparator
	byLower := map[string]string{}
	for n := range known {
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
				n, ok := byLower[parts[1]]
				if !ok {
					unknown = append(unknown, envUnknown{variable: name, profile: parts[1]})
					return "", nil
				}
				parts[1] = n
			}
			key := strings.Join(parts, ".")
			p.envs[key] = name
			return key, envValue(value)
		},
	})
	tree, err := prov.Read()
	if err != nil {
		return nil, nil, err
	}
	p.tree = normalize(tree).(map[string]any)
	sort.Slice(unknown, func(i, j int) bool { return unknown[i].variable < unknown[j].variable })
	return p, unknown, nil
}

// envString marks a value that came from the environment as text, so that
// the decoder may convert it to the key's type (a number, a duration, a
// boolean, a comma-separated list). Values from YAML are never converted.
type envString string

func envValue(s string) any { return envString(s) }
