// Package docs holds the tests of the repository's documentation: every Go
// program in README.md is gofmt-formatted and vets against the current API,
// and each is built and run against a real redis-server with the README's
// own redis.yaml, its observable behaviour checked.
package docs
