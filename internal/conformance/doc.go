// Package conformance runs go-redis's own Ginkgo specs through factory
// handles, to check the project's first promise: turning a profile feature on
// never changes a command's result.
//
// The specs are not copied into this repository. At test time the harness
// takes go-redis v9.23.0 (the version in go.mod) from the Go module cache
// (`go mod download -json`), copies the module into a temporary directory and
// adds three things:
//
//   - subject_factory_test.go (the template in subject.go.txt), which
//     replaces the suite's newUniversalSubject hook: when
//     REDISFACTORY_CONFORMANCE_CONFIG names a configuration file, every
//     command-suite spec (commands, iterator, bitmap) runs against the
//     profile's factory Handle instead of a *redis.Client, and the specs
//     that hold a *redis.Client (pipeline, tx) run against the client the
//     factory built (Handle.Current), with the factory's hooks and dialer;
//   - a few textual patches (see patches), each checked to match exactly,
//     so a new go-redis version fails loudly instead of silently running
//     something else;
//   - a go.mod that requires this module with a replace pointing at the
//     working tree, so the specs and the factory share one go-redis package.
//
// It compiles that once with `go test -c` and runs the binary once for the
// baseline (plain go-redis) and once per entry of Configs, each against its
// own redis-server (or three-master cluster) started on free loopback ports.
// Each run writes Ginkgo's JSON report; Compare puts every spec of a
// configuration beside the same spec on the baseline and TestConformance
// fails on any factory-only failure: a spec that passes on the baseline and
// fails with the factory, or that passes on the baseline and skips itself
// with the factory. Specs that cannot run meaningfully here are listed,
// each with its reason, in exclusions.yaml, the only place they are listed.
//
// Adding a configuration is one entry in Configs (see configs.go).
//
// Run it with
//
//	go test -count=1 -run TestConformance ./internal/conformance/
//
// and set CONFORMANCE_OUT=$PWD/CONFORMANCE.md to rewrite the results table.
package conformance
