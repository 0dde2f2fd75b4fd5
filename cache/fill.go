package cache

import (
	"errors"
	"maps"
	"slices"

	"github.com/redis/go-redis/v9"
)

// kind is the go-redis command type an entry was captured from; a hit
// fills only a command of the same type.
type kind uint8

const (
	kNone kind = iota
	kString
	kInt
	kBool
	kFloat
	kStatus
	kSlice
	kStringSlice
	kIntSlice
	kBoolSlice
	kFloatSlice
	kMapStringString
	kZSlice
	kCmd
)

func kindOf(cmd redis.Cmder) kind {
	switch cmd.(type) {
	case *redis.StringCmd:
		return kString
	case *redis.IntCmd:
		return kInt
	case *redis.BoolCmd:
		return kBool
	case *redis.FloatCmd:
		return kFloat
	case *redis.StatusCmd:
		return kStatus
	case *redis.SliceCmd:
		return kSlice
	case *redis.StringSliceCmd:
		return kStringSlice
	case *redis.IntSliceCmd:
		return kIntSlice
	case *redis.BoolSliceCmd:
		return kBoolSlice
	case *redis.FloatSliceCmd:
		return kFloatSlice
	case *redis.MapStringStringCmd:
		return kMapStringString
	case *redis.ZSliceCmd:
		return kZSlice
	case *redis.Cmd:
		return kCmd
	}
	return kNone
}

// value is a captured reply.
type value struct {
	kind     kind
	nilReply bool
	s        string
	n        int64
	f        float64
	b        bool
	v        any
	size     int64
}

// capture copies cmd's reply; ok is false for replies that are not cached
// (errors other than redis.Nil, unsupported types).
func capture(cmd redis.Cmder, k kind, err error) (val value, ok bool) {
	val.kind = k
	if err == nil {
		err = cmd.Err()
	}
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			return val, false
		}
		val.nilReply = true
		val.size = 8
		return val, true
	}
	switch c := cmd.(type) {
	case *redis.StringCmd:
		val.s = c.Val()
		val.size = int64(len(val.s))
	case *redis.IntCmd:
		val.n = c.Val()
		val.size = 8
	case *redis.BoolCmd:
		val.b = c.Val()
		val.size = 8
	case *redis.FloatCmd:
		val.f = c.Val()
		val.size = 8
	case *redis.StatusCmd:
		val.s = c.Val()
		val.size = int64(len(val.s))
	case *redis.SliceCmd:
		v := c.Val()
		for _, x := range v {
			switch s := x.(type) {
			case nil:
				val.size += 16
			case string:
				val.size += 16 + int64(len(s))
			case int64:
				val.size += 16
			default:
				return val, false
			}
		}
		val.v = slices.Clone(v)
	case *redis.StringSliceCmd:
		v := c.Val()
		for _, s := range v {
			val.size += 16 + int64(len(s))
		}
		val.v = slices.Clone(v)
	case *redis.IntSliceCmd:
		val.v = slices.Clone(c.Val())
		val.size = 8 * int64(len(c.Val()))
	case *redis.BoolSliceCmd:
		val.v = slices.Clone(c.Val())
		val.size = int64(len(c.Val()))
	case *redis.FloatSliceCmd:
		val.v = slices.Clone(c.Val())
		val.size = 8 * int64(len(c.Val()))
	case *redis.MapStringStringCmd:
		v := c.Val()
		for k, s := range v {
			val.size += 48 + int64(len(k)+len(s))
		}
		val.v = maps.Clone(v)
	case *redis.ZSliceCmd:
		v := c.Val()
		out := make([]redis.Z, len(v))
		for i, z := range v {
			s, ok := z.Member.(string)
			if !ok {
				return val, false
			}
			out[i] = z
			val.size += 32 + int64(len(s))
		}
		val.v = out
	case *redis.Cmd:
		switch x := c.Val().(type) {
		case string:
			val.v, val.size = x, 16+int64(len(x))
		case int64:
			val.v, val.size = x, 16
		case float64, bool:
			val.v, val.size = x, 16
		default:
			return val, false
		}
	default:
		return val, false
	}
	return val, true
}

// fill answers cmd from v; it reports false when cmd is not of v's type.
// Slices and maps are copies, so callers may modify what they get.
func (v *value) fill(cmd redis.Cmder) bool {
	if v.nilReply {
		if kindOf(cmd) != v.kind {
			return false
		}
		cmd.SetErr(redis.Nil)
		return true
	}
	switch c := cmd.(type) {
	case *redis.StringCmd:
		if v.kind != kString {
			return false
		}
		c.SetVal(v.s)
	case *redis.IntCmd:
		if v.kind != kInt {
			return false
		}
		c.SetVal(v.n)
	case *redis.BoolCmd:
		if v.kind != kBool {
			return false
		}
		c.SetVal(v.b)
	case *redis.FloatCmd:
		if v.kind != kFloat {
			return false
		}
		c.SetVal(v.f)
	case *redis.StatusCmd:
		if v.kind != kStatus {
			return false
		}
		c.SetVal(v.s)
	case *redis.SliceCmd:
		if v.kind != kSlice {
			return false
		}
		c.SetVal(slices.Clone(v.v.([]any)))
	case *redis.StringSliceCmd:
		if v.kind != kStringSlice {
			return false
		}
		c.SetVal(slices.Clone(v.v.([]string)))
	case *redis.IntSliceCmd:
		if v.kind != kIntSlice {
			return false
		}
		c.SetVal(slices.Clone(v.v.([]int64)))
	case *redis.BoolSliceCmd:
		if v.kind != kBoolSlice {
			return false
		}
		c.SetVal(slices.Clone(v.v.([]bool)))
	case *redis.FloatSliceCmd:
		if v.kind != kFloatSlice {
			return false
		}
		c.SetVal(slices.Clone(v.v.([]float64)))
	case *redis.MapStringStringCmd:
		if v.kind != kMapStringString {
			return false
		}
		c.SetVal(maps.Clone(v.v.(map[string]string)))
	case *redis.ZSliceCmd:
		if v.kind != kZSlice {
			return false
		}
		c.SetVal(slices.Clone(v.v.([]redis.Z)))
	case *redis.Cmd:
		if v.kind != kCmd {
			return false
		}
		c.SetVal(v.v)
	default:
		return false
	}
	return true
}
