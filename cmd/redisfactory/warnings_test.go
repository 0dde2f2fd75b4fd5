package main

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWarningsPrintedNotFatal: validate and check print security warnings
// on stderr and in their JSON, and the warnings alone do not change the
// exit code.
func TestWarningsPrintedNotFatal(t *testing.T) {
	dir := t.TempDir()
	pw := write(t, dir, "pw", "x\n")
	require.NoError(t, os.Chmod(pw, 0o644))
	cfg := write(t, dir, "redis.yaml", "profiles:\n  a:\n    addr: "+deadAddr(t)+"\n    password_file: "+pw+"\n    timeouts: {connect: 200ms}\n    retry: {retries: 0}\n  b:\n    url: rediss://127.0.0.1:1?skip_verify=true\n")

	r := runCLI(t, nil, "validate", cfg)
	assert.Equal(t, exitOK, r.code, r)
	assert.Contains(t, r.stderr, "warning: "+cfg+":4: profiles.a.password_file: the file holds a secret but is readable by its group or by others (mode 0644)")
	assert.Contains(t, r.stderr, "warning: "+cfg+":8: profiles.b.url: TLS certificate verification is off")

	r = runCLI(t, nil, "validate", "--format", "json", cfg)
	assert.Equal(t, exitOK, r.code, r)
	var issues []map[string]string
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &issues), r.stdout)
	require.Len(t, issues, 2)
	for _, is := range issues {
		assert.Equal(t, "warning", is["severity"])
	}

	r = runCLI(t, nil, "check", "--format", "json", "--timeout", "5s", cfg)
	assert.Equal(t, exitFailed, r.code, "unreachable servers fail the check, not the warnings: %s", r)
	var lines []checkLine
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &lines), r.stdout)
	require.Len(t, lines, 2)
	assert.Len(t, lines[0].Warnings, 1)
	assert.Contains(t, lines[0].Warnings[0], "profiles.a.password_file")
	assert.Len(t, lines[1].Warnings, 1)
	assert.Contains(t, r.stderr, "warning: ")
}
