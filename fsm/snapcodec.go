package fsm

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/nexus/nexus/registry"
)

// The frames of config entries and audit records (a million keys and a
// hundred thousand records at the sizes of issue 21) are encoded and
// decoded here by hand instead of by the reflection-based codec, which
// spent ~10 µs per object on a snapshot and most of a restore. The bytes
// are exactly what the codec writes for the same values (canonical
// msgpack: a map per record, keys sorted, omitempty fields left out;
// TestSnapCodecMatchesTheCodec), so either side may be read by the
// other. The decoder reads the shapes it writes and gives up on any
// other (errSnapShape): the frame is then decoded by the codec.

// errSnapShape: the bytes are not in the shape this decoder reads.
var errSnapShape = errors.New("fsm: frame not in the hand codec's shape")

// msgpack encoding (the subset the records use).

func mpMapLen(b []byte, n int) []byte { return mpContainer(b, 0x80, 16, 0xde, 0xdf, n) }

func mpArrayLen(b []byte, n int) []byte { return mpContainer(b, 0x90, 16, 0xdc, 0xdd, n) }

func mpContainer(b []byte, fix byte, cutoff int, b16, b32 byte, n int) []byte {
	switch {
	case n < cutoff:
		return append(b, fix|byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, b16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, b32), uint32(n))
}

func mpStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 256:
		b = append(b, 0xd9, byte(n))
	case n < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func mpBin(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, 0xc0)
	}
	n := len(v)
	switch {
	case n < 256:
		b = append(b, 0xc4, byte(n))
	case n < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, v...)
}

func mpUint(b []byte, v uint64) []byte {
	switch {
	case v <= math.MaxInt8:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

func mpInt(b []byte, v int64) []byte {
	switch {
	case v > math.MaxInt32:
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
	case v > math.MaxInt16:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	case v > math.MaxInt8:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

func mpBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// appendConfigEntries encodes entries as the codec encodes a
// []*registry.ConfigEntry (fields in msgpack-name order).
func appendConfigEntries(b []byte, entries []*registry.ConfigEntry) []byte {
	b = mpArrayLen(b, len(entries))
	for _, e := range entries {
		n := 4
		for _, set := range []bool{e.Flags != 0, e.LockIndex != 0, e.Raw, e.Session != ""} {
			if set {
				n++
			}
		}
		b = mpMapLen(b, n)
		b = mpUint(mpStr(b, "ci"), e.CreateIndex)
		if e.Flags != 0 {
			b = mpUint(mpStr(b, "flags"), e.Flags)
		}
		b = mpStr(mpStr(b, "key"), e.Key)
		if e.LockIndex != 0 {
			b = mpUint(mpStr(b, "li"), e.LockIndex)
		}
		b = mpUint(mpStr(b, "mi"), e.ModifyIndex)
		if e.Raw {
			b = mpBool(mpStr(b, "raw"), true)
		}
		if e.Session != "" {
			b = mpStr(mpStr(b, "session"), e.Session)
		}
		b = mpBin(mpStr(b, "value"), e.Value)
	}
	return b
}

// appendAuditRecords encodes records as the codec encodes a
// []*registry.AuditRecord.
func appendAuditRecords(b []byte, recs []*registry.AuditRecord) []byte {
	b = mpArrayLen(b, len(recs))
	for _, r := range recs {
		b = mpMapLen(b, 11)
		b = mpStr(mpStr(b, "action"), r.Action)
		b = mpStr(mpStr(b, "actor"), r.Actor)
		b = mpBin(mpStr(b, "after"), r.After)
		b = mpBin(mpStr(b, "before"), r.Before)
		b = mpUint(mpStr(b, "i"), r.Index)
		b = mpStr(mpStr(b, "node"), r.Node)
		b = mpUint(mpStr(b, "p"), uint64(r.Position))
		b = mpStr(mpStr(b, "res"), r.Resource)
		b = mpStr(mpStr(b, "rid"), r.RequestID)
		b = mpStr(mpStr(b, "rtype"), r.ResourceType)
		b = mpInt(mpStr(b, "t"), r.Time)
	}
	return b
}

// mpReader decodes the subset above; any other byte is errSnapShape.
type mpReader struct {
	b   []byte
	err error
}

func (r *mpReader) fail() { r.err = errSnapShape }

func (r *mpReader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *mpReader) byte1() byte {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *mpReader) be(n int) uint64 {
	v := r.take(n)
	var x uint64
	for _, c := range v {
		x = x<<8 | uint64(c)
	}
	return x
}

func (r *mpReader) container(fix, fixMask byte, b16, b32 byte) int {
	c := r.byte1()
	switch {
	case c&^fixMask == fix:
		return int(c & fixMask)
	case c == b16:
		return int(r.be(2))
	case c == b32:
		return int(r.be(4))
	}
	r.fail()
	return 0
}

func (r *mpReader) arrayLen() int { return r.container(0x90, 0x0f, 0xdc, 0xdd) }
func (r *mpReader) mapLen() int   { return r.container(0x80, 0x0f, 0xde, 0xdf) }

// strBytes reads a str (the bytes alias the input).
func (r *mpReader) strBytes() []byte {
	c := r.byte1()
	switch {
	case c&0xe0 == 0xa0:
		return r.take(int(c & 0x1f))
	case c == 0xd9:
		return r.take(int(r.be(1)))
	case c == 0xda:
		return r.take(int(r.be(2)))
	case c == 0xdb:
		return r.take(int(r.be(4)))
	}
	r.fail()
	return nil
}

func (r *mpReader) str() string { return string(r.strBytes()) }

// bin reads a bin or nil into a copy (nil for nil).
func (r *mpReader) bin() []byte {
	c := r.byte1()
	var n int
	switch c {
	case 0xc0:
		return nil
	case 0xc4:
		n = int(r.be(1))
	case 0xc5:
		n = int(r.be(2))
	case 0xc6:
		n = int(r.be(4))
	default:
		r.fail()
		return nil
	}
	v := r.take(n)
	if v == nil {
		return nil
	}
	out := make([]byte, len(v))
	copy(out, v)
	return out
}

// int reads any msgpack integer.
func (r *mpReader) int() int64 {
	c := r.byte1()
	switch {
	case c <= 0x7f:
		return int64(c)
	case c >= 0xe0:
		return int64(int8(c))
	}
	switch c {
	case 0xcc:
		return int64(r.be(1))
	case 0xcd:
		return int64(r.be(2))
	case 0xce:
		return int64(r.be(4))
	case 0xcf:
		return int64(r.be(8))
	case 0xd0:
		return int64(int8(r.be(1)))
	case 0xd1:
		return int64(int16(r.be(2)))
	case 0xd2:
		return int64(int32(r.be(4)))
	case 0xd3:
		return int64(r.be(8))
	}
	r.fail()
	return 0
}

func (r *mpReader) uint() uint64 {
	if len(r.b) > 0 && r.b[0] == 0xcf {
		r.take(1)
		return r.be(8)
	}
	v := r.int()
	if v < 0 {
		r.fail()
	}
	return uint64(v)
}

func (r *mpReader) bool() bool {
	switch r.byte1() {
	case 0xc3:
		return true
	case 0xc2:
		return false
	}
	r.fail()
	return false
}

// decodeRecords reads an array of maps, one record each; field reads the
// value of the named field into the record.
func decodeRecords[T any](b []byte, field func(r *mpReader, rec *T, name []byte)) ([]T, error) {
	r := &mpReader{b: b}
	n := r.arrayLen()
	if r.err != nil || n > len(b) {
		return nil, errSnapShape
	}
	out := make([]T, n)
	for i := range out {
		for f := r.mapLen(); f > 0 && r.err == nil; f-- {
			field(r, &out[i], r.strBytes())
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errSnapShape
	}
	return out, nil
}

// decodeConfigEntries reads what appendConfigEntries writes.
func decodeConfigEntries(b []byte) ([]registry.ConfigEntry, error) {
	return decodeRecords(b, func(r *mpReader, e *registry.ConfigEntry, name []byte) {
		switch string(name) {
		case "ci":
			e.CreateIndex = r.uint()
		case "flags":
			e.Flags = r.uint()
		case "key":
			e.Key = r.str()
		case "li":
			e.LockIndex = r.uint()
		case "mi":
			e.ModifyIndex = r.uint()
		case "raw":
			e.Raw = r.bool()
		case "session":
			e.Session = r.str()
		case "value":
			e.Value = r.bin()
		default:
			r.fail()
		}
	})
}

// decodeAuditRecords reads what appendAuditRecords writes.
func decodeAuditRecords(b []byte) ([]registry.AuditRecord, error) {
	// Actors, actions, kinds and nodes repeat: one string each per frame.
	seen := map[string]string{}
	intern := func(b []byte) string {
		if s, ok := seen[string(b)]; ok {
			return s
		}
		s := string(b)
		seen[s] = s
		return s
	}
	return decodeRecords(b, func(r *mpReader, a *registry.AuditRecord, name []byte) {
		switch string(name) {
		case "action":
			a.Action = intern(r.strBytes())
		case "actor":
			a.Actor = intern(r.strBytes())
		case "after":
			a.After = r.bin()
		case "before":
			a.Before = r.bin()
		case "i":
			a.Index = r.uint()
		case "node":
			a.Node = intern(r.strBytes())
		case "p":
			p := r.uint()
			if p > math.MaxUint32 {
				r.fail()
			}
			a.Position = uint32(p)
		case "res":
			a.Resource = r.str()
		case "rid":
			a.RequestID = r.str()
		case "rtype":
			a.ResourceType = intern(r.strBytes())
		case "t":
			a.Time = r.int()
		default:
			r.fail()
		}
	})
}
