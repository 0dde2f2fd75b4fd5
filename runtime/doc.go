// Package runtime is the shared runtime every redisfactory client is built
// from.
//
// A [Runtime] bundles the pieces that clients, factories and background
// features (retries, health probes, hot reload) have in common:
//
//   - a structured [slog.Logger] ([Runtime.Logger]): [slog.Default] unless
//     [Options] names another or turns logging off, so failures (rejected
//     reloads, exhausted retries, …) are logged with no setup;
//   - a non-blocking, typed event bus ([Runtime.Events], [Bus], [Event]);
//   - a [Clock], real by default or a [ManualClock] in tests;
//   - a small scheduler for tracked background work ([Runtime.Go],
//     [Runtime.Every]);
//   - an ordered shutdown ([Runtime.OnClose], [Runtime.Close]).
//
// Several factories can share one Runtime; each registers itself with
// [Runtime.OnClose] and is closed, in reverse registration order, when the
// runtime is closed.
//
// The package name shadows the standard library's runtime package, in the
// manner of k8s.io/apimachinery/pkg/runtime; import the standard one under
// another name (for example goruntime) when both are needed.
package runtime
