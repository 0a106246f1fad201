package command_test

import (
	"bytes"
	"testing"

	"github.com/nexus/nexus/fsm/command"
)

// FuzzDecode checks that Decode never panics on any input, and that whatever
// it accepts encodes again without error to a canonical form that is a fixed
// point (decode → encode → decode → encode gives the same bytes).
//
//	go test ./fsm/command -run=^$ -fuzz=FuzzDecode -fuzztime=20s
func FuzzDecode(f *testing.F) {
	c := command.NewCodec()
	for _, s := range samples() {
		b, err := c.Encode(s.t, s.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])                                        // truncated
		f.Add(append([]byte{b[0], command.Version + 1}, b[2:]...)) // unknown version
	}
	for _, g := range [][]byte{
		nil,
		{0},
		{1, 1},
		{byte(command.SkippableFlag | 9), 1, 0x80},
		{byte(command.TypeConfigSet), command.Version, 0xc1},
		{byte(command.TypeConfigSet), command.Version, 0xdd, 0xff, 0xff, 0xff, 0xff},
		{byte(command.TypeRegisterInstance), command.Version, 0xdf, 0x7f, 0xff, 0xff, 0xff},
		{byte(command.TypeRouteUpsert), command.Version, 0x93, 0xc0, 0x80, 0xc3},
		{byte(command.TypeRouteUpsert), command.Version, 0xd4, 0x01, 0x02}, // fixext1
		{byte(command.TypeSetStatus), command.Version, 0xc7, 0xff, 0x05},   // ext8 longer than input
		[]byte("\x05\x01{\"entries\":[]}"),
	} {
		f.Add(g)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ty, msg, err := c.Decode(data) // must not panic
		if err != nil {
			if msg != nil {
				t.Fatalf("Decode returned a message with error %v", err)
			}
			return
		}
		if !ty.Known() || msg == nil {
			t.Fatalf("Decode accepted type %s with message %#v", ty, msg)
		}
		b1, err := c.Encode(ty, msg)
		if err != nil {
			t.Fatalf("re-encode of accepted %s failed: %v", ty, err)
		}
		ty2, msg2, err := c.Decode(b1)
		if err != nil || ty2 != ty {
			t.Fatalf("re-encoded %s does not decode: %v", ty, err)
		}
		b2, err := c.Encode(ty2, msg2)
		if err != nil {
			t.Fatalf("second re-encode failed: %v", err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding of %s is not a fixed point:\n% x\n% x", ty, b1, b2)
		}
	})
}
