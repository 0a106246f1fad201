package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Snapshot formats. Every snapshot starts with "NEXUS-SNAPSHOT-<format>\n"
// and a msgpack header (snapshotHeader).
//
// Format 1 follows with the whole state as one msgpack document
// (registry.Dump). A restore decodes all of it before the first insert,
// into slices the decoder grows by copying: at a million config keys that
// was 18 s of a 46 s restart.
//
// Format 2 follows with the state except its three large tables as one
// msgpack document (registry.Tx.DumpSmall), then frames: a kind byte, the
// payload's length as a uvarint, and a msgpack array of records of that
// kind (instances, config entries, audit records; a frame holds up to
// frameRecords records or about frameBytes bytes), and a final kind byte 0.
// A restore decodes the next frames while it inserts the last ones (on
// two cores at once), and neither side ever holds a copy of the catalog.
//
// A node writes format 2 only when every Raft server reads it (Deps.SnapshotFormat):
// a snapshot is sent as is to followers that need it.
const (
	SnapshotFormat1 = 1
	SnapshotFormat2 = 2
	// LatestSnapshotFormat is the format this build writes by default.
	LatestSnapshotFormat = SnapshotFormat2
)

const snapshotMagicPrefix = "NEXUS-SNAPSHOT-"

// magicLen is the length of every magic this build knows (one digit).
const magicLen = len(snapshotMagicPrefix) + 2

func snapshotMagic(format int) string { return snapshotMagicPrefix + strconv.Itoa(format) + "\n" }

// Frames of format 2.
const (
	frameEnd       byte = 0
	frameInstances byte = 1
	frameConfig    byte = 2
	frameAudit     byte = 3
	// A frame closes at frameRecords records or once its payload passes
	// frameBytes, whichever comes first.
	frameRecords = 1024
	frameBytes   = 1 << 20
	// maxFrameBytes refuses a corrupt length before reading it (the
	// payload is read as it arrives, so a short file allocates little).
	maxFrameBytes = 1 << 30
	// framesAhead is how many decoded frames may wait for their inserts.
	framesAhead = 8
)

type snapshotHeader struct {
	LastIndex uint64 `msgpack:"last_index"`
	// Term is the Raft term of the entry at LastIndex (0 in snapshots of
	// builds before it was recorded; older builds ignore the field).
	Term uint64 `msgpack:"term,omitempty"`
}

// Snapshot captures an MVCC view; Persist encodes it off the apply path.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return f.newSnapshot(), nil
}

func (f *FSM) newSnapshot() *snapshot {
	format := LatestSnapshotFormat
	if f.snapshotFormat != nil {
		format = f.snapshotFormat()
	}
	return &snapshot{tx: f.store.ReadTxn(), codec: f.codec, index: f.applied.Load(), term: f.term.Load(), format: format}
}

type snapshot struct {
	tx     *registry.Tx
	codec  *command.Codec
	index  uint64
	term   uint64
	format int
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// write writes the snapshot bytes: magic, header, then the state.
func (s *snapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.WriteString(snapshotMagic(s.format)); err != nil {
		return err
	}
	if err := s.codec.EncodeValue(bw, snapshotHeader{LastIndex: s.index, Term: s.term}); err != nil {
		return err
	}
	switch s.format {
	case SnapshotFormat1:
		if err := s.codec.EncodeValue(bw, s.tx.Dump()); err != nil {
			return err
		}
	case SnapshotFormat2:
		if err := s.codec.EncodeValue(bw, s.tx.DumpSmall()); err != nil {
			return err
		}
		fw := &frameWriter{w: bw, codec: s.codec}
		if err := writeFrames(fw, frameInstances, s.tx.EachInstance); err != nil {
			return err
		}
		if err := writeFrames(fw, frameConfig, s.tx.EachConfigEntry); err != nil {
			return err
		}
		if err := writeFrames(fw, frameAudit, s.tx.EachAuditRecord); err != nil {
			return err
		}
		if err := bw.WriteByte(frameEnd); err != nil {
			return err
		}
	default:
		return fmt.Errorf("fsm: snapshot format %d is not one this build writes", s.format)
	}
	return bw.Flush()
}

func (s *snapshot) Release() { s.tx.Abort() }

// WriteSnapshot writes the current state as snapshot bytes (for tests and
// for the snapshot API), in the format Snapshot would use.
func (f *FSM) WriteSnapshot(w io.Writer) error {
	s := f.newSnapshot()
	defer s.Release()
	return s.write(w)
}

// frameWriter writes the frames of format 2.
type frameWriter struct {
	w     *bufio.Writer
	codec *command.Codec
	buf   []byte
	lenb  [binary.MaxVarintLen64]byte
}

func (fw *frameWriter) frame(kind byte, records any) error {
	switch v := records.(type) {
	case []*registry.ConfigEntry:
		fw.buf = appendConfigEntries(fw.buf[:0], v)
	case []*registry.AuditRecord:
		fw.buf = appendAuditRecords(fw.buf[:0], v)
	default:
		b := bytes.NewBuffer(fw.buf[:0])
		if err := fw.codec.EncodeValue(b, records); err != nil {
			return err
		}
		fw.buf = b.Bytes()
	}
	if err := fw.w.WriteByte(kind); err != nil {
		return err
	}
	if _, err := fw.w.Write(fw.lenb[:binary.PutUvarint(fw.lenb[:], uint64(len(fw.buf)))]); err != nil {
		return err
	}
	_, err := fw.w.Write(fw.buf)
	return err
}

// writeFrames writes every record each yields as frames of kind.
func writeFrames[T any](fw *frameWriter, kind byte, each func(func(*T) error) error) error {
	batch := make([]*T, 0, frameRecords)
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := fw.frame(kind, batch)
		batch, size = batch[:0], 0
		return err
	}
	err := each(func(r *T) error {
		batch = append(batch, r)
		size += recordSize(r)
		if len(batch) == frameRecords || size >= frameBytes {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// recordSize estimates a record's encoded size from its large fields.
func recordSize(r any) int {
	switch v := r.(type) {
	case *registry.ConfigEntry:
		return len(v.Key) + len(v.Value) + 32
	case *registry.AuditRecord:
		return int(v.Size())
	}
	return 256
}

// snapshotContents is what reading a snapshot found.
type snapshotContents struct {
	format  int
	header  snapshotHeader
	cluster *registry.ClusterMeta
	counts  []KindCount
	size    int64
}

// snapshotError is a reason a snapshot cannot be restored (ErrBadSnapshot).
type snapshotError struct{ msg string }

func (e *snapshotError) Error() string { return ErrBadSnapshot.Error() + ": " + e.msg }
func (e *snapshotError) Unwrap() error { return ErrBadSnapshot }

func badSnapshot(format string, args ...any) error {
	return &snapshotError{msg: fmt.Sprintf(format, args...)}
}

// restoreInto reads a snapshot of any format this build knows from r, to
// its end, and replaces store's state with it. A snapshot that does not
// read or load whole changes nothing; its error wraps ErrBadSnapshot and
// says which part failed.
func restoreInto(store *registry.Store, codec *command.Codec, r io.Reader) (*snapshotContents, error) {
	cr := &countingReader{r: r}
	br := bufio.NewReaderSize(cr, 256<<10)
	at := func() int64 { return cr.n - int64(br.Buffered()) }
	c := &snapshotContents{}
	magic := make([]byte, magicLen)
	n, err := io.ReadFull(br, magic)
	switch {
	case n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF):
		return nil, badSnapshot("the file is empty")
	case err != nil && err != io.ErrUnexpectedEOF:
		return nil, badSnapshot("%v", err)
	}
	format, ok := parseMagic(magic[:n])
	if !ok {
		return nil, badSnapshot("the file does not start with %q or %q",
			strings.TrimSpace(snapshotMagic(SnapshotFormat1)), strings.TrimSpace(snapshotMagic(SnapshotFormat2)))
	}
	c.format = format
	if err := codec.DecodeValue(br, &c.header); err != nil {
		return nil, badSnapshot("header (truncated or corrupt): %v", err)
	}
	var small registry.Dump
	if err := codec.DecodeValue(br, &small); err != nil {
		return nil, badSnapshot("state (truncated or corrupt) after %d bytes: %v", at(), err)
	}
	streamed := map[string]int{}
	err = store.Restore(func(tx *registry.Tx) error {
		if err := tx.Load(&small); err != nil {
			return badSnapshot("the state does not load: %v", err)
		}
		if format == SnapshotFormat1 {
			return checkEnd(br)
		}
		return loadFrames(tx, codec, br, at, streamed)
	})
	if err != nil {
		return nil, err
	}
	c.cluster = small.Cluster
	c.counts = dumpCounts(&small)
	for i := range c.counts {
		c.counts[i].Count += streamed[c.counts[i].Kind]
	}
	c.size = cr.n
	return c, nil
}

// checkEnd refuses bytes after the state.
func checkEnd(br *bufio.Reader) error {
	rest, err := io.Copy(io.Discard, br)
	if err != nil {
		return badSnapshot("%v", err)
	}
	if rest > 0 {
		return badSnapshot("%d unexpected bytes after the state", rest)
	}
	return nil
}

// decodedFrame is one frame of format 2, decoded, waiting for its inserts.
type decodedFrame struct {
	part registry.Dump
	kind string
	n    int
	err  error
}

// loadFrames reads the frames of format 2 from br and loads them into tx:
// a goroutine reads and decodes frames ahead while this one inserts.
// It then checks that nothing follows the final frame.
func loadFrames(tx *registry.Tx, codec *command.Codec, br *bufio.Reader, at func() int64, counts map[string]int) error {
	frames := make(chan decodedFrame, framesAhead)
	stop, done := make(chan struct{}), make(chan struct{})
	// On an early return the reader stops at its next frame; wait for it,
	// so nothing reads r after the restore returned.
	defer func() { close(stop); <-done }()
	go func() {
		defer close(done)
		defer close(frames)
		for {
			fr := readFrame(codec, br, at)
			if fr == nil {
				fr = &decodedFrame{err: checkEnd(br)}
				if fr.err == nil {
					return
				}
			}
			select {
			case frames <- *fr:
			case <-stop:
				return
			}
			if fr.err != nil {
				return
			}
		}
	}()
	for fr := range frames {
		if fr.err != nil {
			return fr.err
		}
		if err := tx.Load(&fr.part); err != nil {
			return badSnapshot("the state does not load: %v", err)
		}
		counts[fr.kind] += fr.n
	}
	return nil
}

// readFrame reads and decodes the next frame; nil after the final one.
func readFrame(codec *command.Codec, br *bufio.Reader, at func() int64) *decodedFrame {
	kind, err := br.ReadByte()
	if err != nil {
		return &decodedFrame{err: badSnapshot("state (truncated or corrupt) after %d bytes: no final frame: %v", at(), err)}
	}
	if kind == frameEnd {
		return nil
	}
	start := at() - 1
	size, err := binary.ReadUvarint(br)
	if err != nil || size > maxFrameBytes {
		return &decodedFrame{err: badSnapshot("state (truncated or corrupt) after %d bytes: frame length %d: %v", start, size, err)}
	}
	payload, err := readPayload(br, int(size))
	if err != nil {
		return &decodedFrame{err: badSnapshot("state (truncated or corrupt) after %d bytes: frame of %d bytes holds %d: %v", start, size, len(payload), err)}
	}
	fr := &decodedFrame{}
	switch kind {
	case frameInstances:
		err = codec.DecodePayload(payload, &fr.part.Instances)
		fr.kind, fr.n = "instances", len(fr.part.Instances)
	case frameConfig:
		if fr.part.Config, err = decodeConfigEntries(payload); err == errSnapShape {
			err = codec.DecodePayload(payload, &fr.part.Config)
		}
		fr.kind, fr.n = "config", len(fr.part.Config)
	case frameAudit:
		if fr.part.Audit, err = decodeAuditRecords(payload); err == errSnapShape {
			err = codec.DecodePayload(payload, &fr.part.Audit)
		}
		fr.kind, fr.n = "audit", len(fr.part.Audit)
	default:
		err = fmt.Errorf("unknown frame kind %d", kind)
	}
	if err != nil {
		fr.err = badSnapshot("state (truncated or corrupt) in the frame at byte %d: %v", start, err)
	}
	return fr
}

// readPayload reads size bytes. Up to frameBytes*16 they are read into
// one allocation; a larger length (legal, but rare: one huge record) is
// read in steps, so a corrupt length in a short file allocates little.
func readPayload(r io.Reader, size int) ([]byte, error) {
	if size <= frameBytes*16 {
		b := make([]byte, size)
		n, err := io.ReadFull(r, b)
		return b[:n], err
	}
	var buf bytes.Buffer
	_, err := io.CopyN(&buf, r, int64(size))
	return buf.Bytes(), err
}

// parseMagic accepts the magic of a format this build restores.
func parseMagic(b []byte) (int, bool) {
	for _, f := range []int{SnapshotFormat1, SnapshotFormat2} {
		if bytes.Equal(b, []byte(snapshotMagic(f))) {
			return f, true
		}
	}
	return 0, false
}

// Restore replaces the state with a snapshot of any format this build
// reads. A snapshot that does not read or load whole changes nothing.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	c, err := restoreInto(f.store, f.codec, rc)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.term.Store(c.header.Term)
	f.setApplied(c.header.LastIndex)
	attrs := []any{"last_index", c.header.LastIndex, "format", c.format}
	for _, k := range c.counts {
		if k.Count > 0 {
			attrs = append(attrs, k.Kind, k.Count)
		}
	}
	f.logger.Info("restored snapshot", attrs...)
	return nil
}

// DecodeSnapshot reads a whole snapshot of any format this build reads
// and returns the index it was taken at and its state (for tests and
// tools that compare states; a restore streams instead).
func DecodeSnapshot(r io.Reader, codec *command.Codec) (uint64, *registry.Dump, error) {
	store := registry.NewStore()
	c, err := restoreInto(store, codec, r)
	if err != nil {
		return 0, nil, err
	}
	tx := store.ReadTxn()
	defer tx.Abort()
	return c.header.LastIndex, tx.Dump(), nil
}
