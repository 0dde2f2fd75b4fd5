package fastcmd

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ptr[T any](v T) *T { return &v }

// TestAppendArgsMatchesGoRedis sends each argument list through a plain
// go-redis client to the scripted server and requires AppendArgs to produce
// the very bytes the server received.
func TestAppendArgsMatchesGoRedis(t *testing.T) {
	srv := newScriptServer(t)
	when := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.FixedZone("x", 5*3600+1800))
	cases := []struct {
		name string
		args []any
	}{
		{"get", []any{"get", "k"}},
		{"nil", []any{"echo", nil}},
		{"empty string", []any{"set", "", ""}},
		{"string pointers", []any{"set", ptr("k"), (*string)(nil)}},
		{"binary bytes", []any{"set", "k", []byte{0, '\r', '\n', 0xff, '$', '*'}}},
		{"empty and nil bytes", []any{"set", []byte{}, []byte(nil)}},
		{"utf8", []any{"set", "ключ", "值"}},
		{"ints", []any{"x", 0, -1, int8(-128), int16(32767), int32(-2147483648), int64(math.MinInt64), int64(math.MaxInt64)}},
		{"int pointers", []any{"x", ptr(7), ptr(int8(-8)), ptr(int16(16)), ptr(int32(-32)), ptr(int64(64))}},
		{"nil int pointers", []any{"x", (*int)(nil), (*int8)(nil), (*int16)(nil), (*int32)(nil), (*int64)(nil)}},
		{"uints", []any{"x", uint(0), uint8(255), uint16(65535), uint32(4294967295), uint64(math.MaxUint64), uintptr(12)}},
		{"uint pointers", []any{"x", ptr(uint(1)), ptr(uint8(2)), ptr(uint16(3)), ptr(uint32(4)), ptr(uint64(math.MaxUint64)), ptr(uintptr(6))}},
		{"nil uint pointers", []any{"x", (*uint)(nil), (*uint8)(nil), (*uint16)(nil), (*uint32)(nil), (*uint64)(nil), (*uintptr)(nil)}},
		{"floats", []any{"x", 0.0, -0.0, 1.5, -2.25, 0.1, 1e-300, 5e-324, 1e300, math.MaxFloat64, float32(0.1), float32(3.4e38), float32(1e-45)}},
		{"float specials", []any{"x", math.NaN(), math.Inf(1), math.Inf(-1), float32(math.Inf(-1))}},
		{"float pointers", []any{"x", ptr(2.5), ptr(float32(-1.25)), (*float64)(nil), (*float32)(nil)}},
		{"bools", []any{"x", true, false, ptr(true), ptr(false), (*bool)(nil)}},
		{"durations", []any{"x", time.Duration(0), 1500 * time.Millisecond, -time.Nanosecond, ptr(time.Hour), (*time.Duration)(nil)}},
		{"times", []any{"x", when, when.UTC(), time.Time{}, ptr(when), (*time.Time)(nil)}},
		{"ips", []any{"x", net.ParseIP("10.1.2.3"), net.ParseIP("10.1.2.3").To4(), net.ParseIP("::1"), net.IP(nil)}},
		{"long value", []any{"set", "k", string(make([]byte, 70000))}},
		{"many args", manyArgs(300)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := refProcess(t, srv, 2, redis.NewCmd(context.Background(), tc.args...), []byte("+OK\r\n"))
			got, ok := AppendArgs(nil, tc.args)
			require.True(t, ok)
			assert.Equal(t, string(want), string(got))

			// Appending keeps what is already in dst.
			got2, ok := AppendArgs([]byte("prefix"), tc.args)
			require.True(t, ok)
			assert.Equal(t, "prefix"+string(want), string(got2))
		})
	}
}

func manyArgs(n int) []any {
	args := []any{"mset"}
	for i := range n {
		args = append(args, i, float64(i)/3)
	}
	return args
}

type stringKey string

type marshaler struct{}

func (marshaler) MarshalBinary() ([]byte, error) { return []byte("m"), nil }

// TestAppendArgsRefusesOtherTypes covers the types AppendArgs leaves to
// go-redis: named types (go-redis does not treat them as their underlying
// type), BinaryMarshalers (user code) and types go-redis cannot marshal.
func TestAppendArgsRefusesOtherTypes(t *testing.T) {
	for _, arg := range []any{
		stringKey("k"), marshaler{}, &marshaler{}, json.RawMessage(`{}`),
		[]string{"a"}, []any{"a"}, map[string]string{}, struct{}{}, complex(1, 2),
		ptr(ptr(1)), ptr([]byte("x")), ptr(net.IP{1, 2, 3, 4}), func() {},
	} {
		dst := []byte("keep")
		out, ok := AppendArgs(dst, []any{"set", "k", arg})
		assert.False(t, ok, "%T", arg)
		assert.Equal(t, "keep", string(out), "%T: dst must be returned unchanged", arg)
	}
}

func BenchmarkAppendArgs(b *testing.B) {
	args := []any{"set", "some:key", "some value of moderate length", 3600}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendArgs(buf[:0], args)
	}
}
