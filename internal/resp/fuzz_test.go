package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadCommand checks the proxy's command reader on any input: it never
// panics; a command read in full re-encodes to the bytes it was read from;
// reading with a small budget and streaming the rest with CopyRest passes
// on exactly the bytes ReadCommand consumed, command after command.
func FuzzReadCommand(f *testing.F) {
	for _, seed := range []string{
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n",
		"PING\r\n",
		"\r\n",
		"*0\r\n",
		"*-1\r\n",
		"*1\r\n$536870912\r\n",
		"*16777216\r\n",
		"*2\r\n$3\r\nGET\r\n$-1\r\n",
		"*1\r\n:1\r\n",
		"*1\r\n$3\r\nabcXY",
		"*2\r\n$4\r\nECHO\r\n$10\r\na\r\nb\r\ncdef\r\n*1\r\n$4\r\nPING\r\n",
		"*4\r\n$6\r\nCLIENT\r\n$19\r\nMAINT_NOTIFICATIONS\r\n$2\r\nON\r\n$20\r\nmoving-endpoint-type\r\n",
		"*x\r\n",
		"*99999999999999999999\r\n",
	} {
		f.Add([]byte(seed), uint16(8))
	}
	f.Fuzz(func(t *testing.T, data []byte, budget uint16) {
		full := bufio.NewReaderSize(bytes.NewReader(data), 16)
		head := bufio.NewReaderSize(bytes.NewReader(data), 16)
		var consumed, streamed bytes.Buffer
		for range 64 {
			args, raw, err := ReadCommand(full)
			h, herr := ReadCommandHead(head, int(budget))
			if herr == nil {
				streamed.Write(h.Raw)
				if h.Partial() {
					herr = h.CopyRest(head, &streamed)
				}
			}
			if err != nil {
				if herr == nil && !errors.Is(err, ErrProtocol) {
					t.Fatalf("ReadCommand failed (%v) where the streaming reader did not", err)
				}
				return
			}
			consumed.Write(raw)
			if herr != nil {
				// Streaming checks headers only, so it fails at least as late:
				// never on a command ReadCommand accepted.
				t.Fatalf("streaming reader failed on a command ReadCommand accepted: %v (%q)", herr, raw)
			}
			if !bytes.Equal(consumed.Bytes(), streamed.Bytes()) {
				t.Fatalf("streamed %q, read %q", streamed.Bytes(), consumed.Bytes())
			}
			if len(raw) > 0 && raw[0] == '*' && len(args) > 0 {
				if re := Command(args...); !bytes.Equal(re, raw) {
					t.Fatalf("args %q re-encode to %q, read from %q", args, re, raw)
				}
			}
			if h.Partial() {
				t.Fatal("CopyRest left the command partial")
			}
		}
		if _, _, err := ReadCommand(full); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, ErrProtocol) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}
