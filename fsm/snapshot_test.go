package fsm_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// framedState builds an FSM whose instances, config entries and audit
// records each span several frames of format 2 (more than 1,024 records),
// with six config values large enough to close frames by size.
func framedState(t *testing.T) *fsm.FSM {
	t.Helper()
	f := fsmWritingFormat(fsm.SnapshotFormat2)
	r := &registrations{f: f, codec: command.NewCodec()}
	r.apply(t, 0, 2500, 64)
	big := []byte(`"` + strings.Repeat("b", 600<<10) + `"`)
	small := []byte(`{"n":1}`)
	for k := 0; k < 3000; k += 10 {
		var ops []command.ConfigOp
		for j := k; j < k+10; j++ {
			v := small
			if j%500 == 0 {
				v = big
			}
			ops = append(ops, command.ConfigOp{Key: fmt.Sprintf("app/key-%05d", j), Value: v})
		}
		r.idx++
		data, err := r.codec.Encode(command.TypeConfigSet, &command.ConfigSet{Meta: meta(int(r.idx)), Entries: ops})
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range f.ApplyBatch([]*raft.Log{{Index: r.idx, Term: 2, Type: raft.LogCommand, Data: data}}) {
			if res, ok := out.(*command.Result); !ok || res.Err != nil {
				t.Fatalf("apply: %#v", out)
			}
		}
	}
	return f
}

func dumpOf(f *fsm.FSM) *registry.Dump {
	tx := f.Store().ReadTxn()
	defer tx.Abort()
	return tx.Dump()
}

// Both formats carry the same state: a snapshot written in either
// restores to an equal store, and re-encodes to the same bytes.
func TestSnapshotFormatsRoundTrip(t *testing.T) {
	src := framedState(t)
	want := dumpOf(src)
	if len(want.Instances) != 2500 || len(want.Config) != 3000 || len(want.Audit) < 2000 {
		t.Fatalf("state: %d instances, %d config, %d audit", len(want.Instances), len(want.Config), len(want.Audit))
	}
	snaps := map[int][]byte{}
	for _, format := range []int{fsm.SnapshotFormat1, fsm.SnapshotFormat2} {
		var buf bytes.Buffer
		w := writerOf(src.Store(), format)
		if err := w.WriteSnapshot(&buf); err != nil {
			t.Fatal(err)
		}
		snaps[format] = buf.Bytes()
	}
	for from, b := range snaps {
		for _, to := range []int{fsm.SnapshotFormat1, fsm.SnapshotFormat2} {
			t.Run(fmt.Sprintf("%d_to_%d", from, to), func(t *testing.T) {
				dst := fsmWritingFormat(to)
				if err := dst.Restore(&fakeRC{bytes.NewReader(b)}); err != nil {
					t.Fatal(err)
				}
				if got := dumpOf(dst); !reflect.DeepEqual(got, want) {
					t.Fatalf("format %d restored a different state (%d instances, %d config, %d audit)",
						from, len(got.Instances), len(got.Config), len(got.Audit))
				}
				if !bytes.Equal(snapshotBytes(t, dst), snaps[to]) {
					t.Fatalf("a restore of format %d re-encodes in format %d to other bytes", from, to)
				}
				info, err := fsm.Inspect(bytes.NewReader(b), command.NewCodec())
				if err != nil || info.Format != from || info.Count("instances") != 2500 || info.Count("config") != 3000 ||
					info.Count("audit") != len(want.Audit) || info.Size != int64(len(b)) {
					t.Fatalf("Inspect: %+v %v", info, err)
				}
			})
		}
	}
	if len(snaps[fsm.SnapshotFormat2]) > len(snaps[fsm.SnapshotFormat1])*11/10 {
		t.Errorf("format 2 is %d bytes, format 1 %d", len(snaps[fsm.SnapshotFormat2]), len(snaps[fsm.SnapshotFormat1]))
	}
}

// frames splits the frame section of a format-2 snapshot: the offset of
// each frame and of the final byte.
func frames(t *testing.T, b []byte) (offsets []int, end int) {
	t.Helper()
	c := command.NewCodec()
	r := bytes.NewReader(b[len("NEXUS-SNAPSHOT-2\n"):])
	var hdr map[string]uint64
	var small registry.Dump
	if err := c.DecodeValue(r, &hdr); err != nil {
		t.Fatal(err)
	}
	if err := c.DecodeValue(r, &small); err != nil {
		t.Fatal(err)
	}
	at := len(b) - r.Len()
	for b[at] != 0 {
		offsets = append(offsets, at)
		n, w := binary.Uvarint(b[at+1:])
		at += 1 + w + int(n)
	}
	return offsets, at
}

// A format-2 snapshot that is cut, padded or corrupt anywhere in its
// frames is refused whole: the state, the applied index and the watchers
// of the store are as they were.
func TestSnapshotFormat2RefusesGarbage(t *testing.T) {
	valid := snapshotBytes(t, framedState(t))
	offs, end := frames(t, valid)
	if len(offs) < 8 || end != len(valid)-1 {
		t.Fatalf("%d frames ending at %d of %d bytes", len(offs), end, len(valid))
	}
	with := func(at int, bs ...byte) []byte {
		out := bytes.Clone(valid[:at])
		return append(out, bs...)
	}
	corrupt := bytes.Clone(valid)
	corrupt[offs[3]+4] = 0xc1 // inside a frame's msgpack payload
	var hugeLen [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hugeLen[:], 1<<40)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"no final frame", valid[:end], "no final frame"},
		{"cut in a frame's length", valid[:offs[2]+1], "frame length"},
		{"cut in a frame", valid[:offs[5]+100], "frame of"},
		{"cut between frames", valid[:offs[4]], "no final frame"},
		{"unknown frame kind", with(offs[1], 9, 1, 0x90), "unknown frame kind 9"},
		{"frame length too large", with(offs[1], append([]byte{1}, hugeLen[:n]...)...), "frame length"},
		{"frame of the wrong shape", with(offs[1], 2, 1, 0x05, 0), "in the frame at byte"},
		{"corrupt payload", corrupt, "in the frame at byte"},
		{"bytes after the final frame", append(bytes.Clone(valid), 0x01), "1 unexpected bytes after the state"},
		{"a record that does not load", with(offs[0], append(frameOf(t, 1, []registry.Instance{{ID: "x"}}), 0)...), "does not load"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := refusedRestore(t, &fakeRC{bytes.NewReader(tc.data)})
			if !errors.Is(err, fsm.ErrBadSnapshot) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrBadSnapshot containing %q", err, tc.want)
			}
			if _, err := fsm.Inspect(bytes.NewReader(tc.data), command.NewCodec()); !errors.Is(err, fsm.ErrBadSnapshot) {
				t.Errorf("Inspect: %v, want ErrBadSnapshot", err)
			}
		})
	}
}

// frameOf encodes records as one frame of kind.
func frameOf(t *testing.T, kind byte, records any) []byte {
	t.Helper()
	var payload bytes.Buffer
	if err := command.NewCodec().EncodeValue(&payload, records); err != nil {
		t.Fatal(err)
	}
	out := binary.AppendUvarint([]byte{kind}, uint64(payload.Len()))
	return append(out, payload.Bytes()...)
}

// Frames close at 1,024 records or once they pass ~1 MiB: a frame of
// large values stays small, and record counts split as documented.
func TestSnapshotFramesAreBounded(t *testing.T) {
	b := snapshotBytes(t, framedState(t))
	offs, end := frames(t, b)
	kinds := map[byte]int{}
	for i, at := range offs {
		next := end
		if i+1 < len(offs) {
			next = offs[i+1]
		}
		kinds[b[at]]++
		if size := next - at; size > (1<<20)+(512<<10) {
			t.Errorf("frame %d (kind %d) is %d bytes", i, b[at], size)
		}
	}
	// 2,500 instances: 1,024 + 1,024 + 452. Config: 3,000 keys with six
	// 600 KiB values, which close frames by size (by count alone: 3).
	if kinds[1] != 3 || kinds[2] < 4 || kinds[3] < 2 {
		t.Fatalf("frames by kind %v", kinds)
	}
}
