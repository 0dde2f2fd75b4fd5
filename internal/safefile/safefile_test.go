package safefile_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/safefile"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(regular, []byte("12345"), 0o600))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	link := filepath.Join(dir, "zero")
	require.NoError(t, os.Symlink("/dev/zero", link))

	data, err := safefile.Read(regular, 5)
	require.NoError(t, err)
	assert.Equal(t, "12345", string(data))

	_, err = safefile.Read(regular, 4)
	var tl *safefile.TooLargeError
	require.ErrorAs(t, err, &tl)
	assert.Equal(t, regular+": the file is larger than the limit of 4 bytes", err.Error())

	for _, tc := range []struct{ path, kind string }{
		{fifo, "a named pipe (FIFO)"},       // no writer: a blocking open would never return
		{link, "a character device"},        // endless: an unbounded read would exhaust memory
		{"/dev/null", "a character device"}, // empty, but still not a file
		{dir, "a directory"},
	} {
		start := time.Now()
		_, err := safefile.Read(tc.path, 1<<20)
		require.ErrorIs(t, err, safefile.ErrNotRegular, tc.path)
		assert.Contains(t, err.Error(), "it is "+tc.kind)
		assert.Less(t, time.Since(start), time.Second, "%s: the check must not block", tc.path)
	}
	_, err = safefile.Read(filepath.Join(dir, "missing"), 1)
	assert.True(t, errors.Is(err, os.ErrNotExist))
}

func TestSize(t *testing.T) {
	assert.Equal(t, "1 MiB", safefile.Size(1<<20))
	assert.Equal(t, "64 KiB", safefile.Size(64<<10))
	assert.Equal(t, "1000 bytes", safefile.Size(1000))
}
