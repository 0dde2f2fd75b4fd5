// Package docs holds the tests of the repository's documentation: every Go
// program in README.md compiles against the current API.
package docs
