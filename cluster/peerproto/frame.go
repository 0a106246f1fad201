package peerproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The forwarding stream (PathForwardStream) carries forwarded writes as
// frames on one connection per leader, many in flight at once, answered in
// any order:
//
//	request  (follower → leader): u32 length | u64 id | u8 mac length | mac | command
//	answer   (leader → follower): u32 length | u64 id | u16 status | body
//
// length counts the bytes after itself, big-endian. The mac is HeaderMAC's
// value for the command (each write is signed, as over PathForward); the
// answer's status and body are what PathForward answers (200 and the
// Result's JSON, or an error status and the error body).

const (
	frameLenSize = 4
	reqHeadSize  = 8 + 1 // id, mac length
	ansHeadSize  = 8 + 2 // id, status
)

// errFrame: the peer sent a frame this build cannot read; the stream is
// closed.
var errFrame = errors.New("malformed forwarding frame")

// appendRequest appends a request frame to b.
func appendRequest(b []byte, id uint64, mac string, cmd []byte) []byte {
	n := reqHeadSize + len(mac) + len(cmd)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint64(b, id)
	b = append(b, byte(len(mac)))
	b = append(b, mac...)
	return append(b, cmd...)
}

// appendAnswer appends an answer frame to b.
func appendAnswer(b []byte, id uint64, status int, body []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(ansHeadSize+len(body)))
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint16(b, uint16(status))
	return append(b, body...)
}

// readFrame reads the next frame's payload (after the length) into a new
// slice; a frame of more than limit bytes, or one shorter than min, is
// errFrame.
func readFrame(r *bufio.Reader, min, limit int) ([]byte, error) {
	var h [frameLenSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(h[:]))
	if n < min || n > limit {
		return nil, fmt.Errorf("%w: %d bytes (%d-%d allowed)", errFrame, n, min, limit)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return p, nil
}

// parseRequest splits a request payload.
func parseRequest(p []byte) (id uint64, mac string, cmd []byte, err error) {
	if len(p) < reqHeadSize {
		return 0, "", nil, errFrame
	}
	id = binary.BigEndian.Uint64(p)
	ml := int(p[8])
	if len(p) < reqHeadSize+ml {
		return 0, "", nil, fmt.Errorf("%w: mac of %d bytes in a frame of %d", errFrame, ml, len(p))
	}
	return id, string(p[reqHeadSize : reqHeadSize+ml]), p[reqHeadSize+ml:], nil
}

// parseAnswer splits an answer payload.
func parseAnswer(p []byte) (id uint64, status int, body []byte, err error) {
	if len(p) < ansHeadSize {
		return 0, 0, nil, errFrame
	}
	return binary.BigEndian.Uint64(p), int(binary.BigEndian.Uint16(p[8:])), p[ansHeadSize:], nil
}
