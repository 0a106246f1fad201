package fsm

import (
	"bufio"
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Lengths and numbers at every boundary of the msgpack encodings.
var (
	snapLens = []int{0, 1, 31, 32, 255, 256, 65535, 65536}
	snapNums = []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64, math.MaxUint64}
	snapInts = []int64{0, 1, -1, -32, -33, 127, 128, -128, -129, 32767, 32768, -32768, -32769,
		math.MaxInt32, math.MaxInt32 + 1, math.MinInt32, math.MinInt32 - 1, math.MaxInt64, math.MinInt64, 1_765_000_000_000_000_000}
)

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func randBytes(rng *rand.Rand) []byte {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	return bytes.Repeat([]byte{'v'}, pick(rng, snapLens))
}

func randStr(rng *rand.Rand) string {
	n := pick(rng, snapLens)
	return strings.Repeat("é", n/2) + strings.Repeat("x", n%2) // n bytes
}

func randEntries(rng *rand.Rand, n int) []*registry.ConfigEntry {
	out := make([]*registry.ConfigEntry, n)
	for i := range out {
		e := &registry.ConfigEntry{Key: randStr(rng), Value: randBytes(rng), CreateIndex: pick(rng, snapNums), ModifyIndex: pick(rng, snapNums)}
		if rng.IntN(2) == 0 {
			e.Session, e.LockIndex, e.Raw, e.Flags = randStr(rng), pick(rng, snapNums), rng.IntN(2) == 0, pick(rng, snapNums)
		}
		out[i] = e
	}
	return out
}

func randRecords(rng *rand.Rand, n int) []*registry.AuditRecord {
	out := make([]*registry.AuditRecord, n)
	for i := range out {
		out[i] = &registry.AuditRecord{Index: pick(rng, snapNums), Position: uint32(pick(rng, snapNums)), Time: pick(rng, snapInts),
			Actor: randStr(rng), Action: randStr(rng), ResourceType: randStr(rng), Resource: randStr(rng), Node: randStr(rng),
			RequestID: randStr(rng), Before: randBytes(rng), After: randBytes(rng)}
	}
	return out
}

func values[T any](ps []*T) []T {
	out := make([]T, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

// The hand codec writes the codec's bytes, reads them back, and the codec
// reads the hand codec's: the two are interchangeable in a snapshot.
func TestSnapCodecMatchesTheCodec(t *testing.T) {
	c := command.NewCodec()
	rng := rand.New(rand.NewPCG(7, 8))
	for round := 0; round < 200; round++ {
		entries, recs := randEntries(rng, 1+rng.IntN(20)), randRecords(rng, 1+rng.IntN(20))
		for _, tc := range []struct {
			name   string
			in     any
			hand   []byte
			decode func([]byte) (any, error)
			via    func([]byte) (any, error)
			want   any
		}{
			{"config", entries, appendConfigEntries(nil, entries),
				func(b []byte) (any, error) { return decodeConfigEntries(b) },
				func(b []byte) (any, error) {
					var v []registry.ConfigEntry
					err := c.DecodePayload(b, &v)
					return v, err
				},
				values(entries)},
			{"audit", recs, appendAuditRecords(nil, recs),
				func(b []byte) (any, error) { return decodeAuditRecords(b) },
				func(b []byte) (any, error) {
					var v []registry.AuditRecord
					err := c.DecodePayload(b, &v)
					return v, err
				},
				values(recs)},
		} {
			var want bytes.Buffer
			if err := c.EncodeValue(&want, tc.in); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tc.hand, want.Bytes()) {
				t.Fatalf("%s round %d: hand bytes differ from the codec's\n hand % x\ncodec % x", tc.name, round, tc.hand[:min(64, len(tc.hand))], want.Bytes()[:min(64, want.Len())])
			}
			got, err := tc.decode(want.Bytes())
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%s round %d: hand decode: %v", tc.name, round, err)
			}
			viaCodec, err := tc.via(tc.hand)
			if err != nil || !reflect.DeepEqual(viaCodec, got) {
				t.Fatalf("%s round %d: the codec reads the hand bytes differently: %v", tc.name, round, err)
			}
		}
	}
}

// Bytes of another shape (a field a later build added, a type this
// decoder does not read, a cut) are not misread: errSnapShape, and the
// frame reader falls back to the codec, which skips unknown fields.
func TestSnapCodecRefusesOtherShapes(t *testing.T) {
	c := command.NewCodec()
	type laterEntry struct {
		Key   string `msgpack:"key"`
		Value []byte `msgpack:"value"`
		Zone  string `msgpack:"zone"`
	}
	var later bytes.Buffer
	if err := c.EncodeValue(&later, []laterEntry{{Key: "k", Value: []byte(`1`), Zone: "z"}}); err != nil {
		t.Fatal(err)
	}
	good := appendConfigEntries(nil, []*registry.ConfigEntry{{Key: "k", Value: []byte(`1`), ModifyIndex: 3}})
	for name, b := range map[string][]byte{
		"unknown field":   later.Bytes(),
		"cut":             good[:len(good)-1],
		"trailing byte":   append(bytes.Clone(good), 0),
		"not an array":    {0xc0},
		"huge array":      {0xdd, 0xff, 0xff, 0xff, 0xff},
		"string as value": bytes.Replace(bytes.Clone(good), []byte{0xc4, 1, '1'}, []byte{0xa1, '1'}, 1),
	} {
		if _, err := decodeConfigEntries(b); err != errSnapShape {
			t.Errorf("%s: %v, want errSnapShape", name, err)
		}
		if _, err := decodeAuditRecords(b); err != errSnapShape {
			t.Errorf("%s (as audit records): %v, want errSnapShape", name, err)
		}
	}
	fr := readFrame(c, bufioOf(append([]byte{frameConfig, byte(later.Len())}, later.Bytes()...)), func() int64 { return 0 })
	if fr == nil || fr.err != nil || len(fr.part.Config) != 1 || fr.part.Config[0].Key != "k" {
		t.Fatalf("a frame with a later field: %+v", fr)
	}
}

func bufioOf(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
