// Package rehearsal holds the maintenance rehearsal's conformance test:
// one scripted rehearsal through two sch.Proxy instances in front of two
// redis-servers (MIGRATING, probe, MIGRATED, probe, MOVING to the second
// proxy, cut), run with clients no one here wrote — go-redis's own
// maintnotifications client and node-redis from npm (node/, installed by
// .ci/run with npm ci) — and with the factory's client. Each must fail no
// command of its load. The package has no code of its own.
package rehearsal
