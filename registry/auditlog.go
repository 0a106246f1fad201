package registry

import "sort"

// auditChunk is how many records one chunk of the audit log holds.
const auditChunk = 512

type auditChunkArr [auditChunk]AuditRecord

// auditLog is the audit backlog: its records in key order, appended at the
// tail (every write adds one) and removed at the head (eviction, archiving).
//
// It replaces a go-memdb table whose radix tree cost every write an
// insert and a delete with their path copies (half of the allocations of
// a config write, and a fifth of the heap at 100,000 instances). A value
// of auditLog is a version: it is kept in the audit state row, so a read
// transaction sees the version its row holds, and a write transaction
// builds the next one. Versions share chunks: a write only ever fills
// positions past the end of every version before it (readers never look
// there) and moves the head forward, so no position a committed version
// can read is ever written again. An aborted write may have filled a
// position past the committed end; the next write overwrites it. The one
// write in the middle (a record whose key is not above the last, which only
// a foreign snapshot can cause) copies the log first.
type auditLog struct {
	chunks []*auditChunkArr
	head   int // position of the first record in chunks[0]
	n      int // records
}

// Len returns the number of records.
func (l *auditLog) Len() int { return l.n }

// at returns the i-th record, oldest first (0 <= i < Len).
func (l *auditLog) at(i int) *AuditRecord {
	p := l.head + i
	return &l.chunks[p/auditChunk][p%auditChunk]
}

// push appends r; its key must be above the last record's.
func (l *auditLog) push(r AuditRecord) {
	p := l.head + l.n
	if p/auditChunk == len(l.chunks) {
		l.chunks = append(l.chunks, new(auditChunkArr))
	}
	l.chunks[p/auditChunk][p%auditChunk] = r
	l.n++
}

// pop removes the oldest record and returns it (Len must be > 0).
func (l *auditLog) pop() *AuditRecord {
	r := l.at(0)
	l.head++
	l.n--
	if l.head == auditChunk {
		l.chunks, l.head = l.chunks[1:], 0
	}
	if l.n == 0 {
		*l = auditLog{}
	}
	return r
}

// search returns the position of the first record whose key is not below k.
func (l *auditLog) search(k AuditKey) int {
	return sort.Search(l.n, func(i int) bool { return !l.at(i).Key().Less(k) })
}

// put adds r in key order, replacing a record with its key; it returns
// the record replaced, if any. A key above the last is a push; any other
// rebuilds the log (rare: only after restoring a foreign snapshot).
func (l *auditLog) put(r AuditRecord) *AuditRecord {
	if l.n == 0 || l.at(l.n-1).Key().Less(r.Key()) {
		l.push(r)
		return nil
	}
	i := l.search(r.Key())
	var old *AuditRecord
	next := auditLog{}
	for j := 0; j < l.n; j++ {
		switch {
		case j == i && l.at(j).Key() == r.Key():
			prev := *l.at(j)
			old = &prev
			next.push(r)
			continue
		case j == i:
			next.push(r)
		}
		next.push(*l.at(j))
	}
	*l = next
	return old
}

// each calls fn for the records from position i on, oldest first, until
// fn returns false.
func (l *auditLog) each(i int, fn func(*AuditRecord) bool) {
	for ; i < l.n; i++ {
		if !fn(l.at(i)) {
			return
		}
	}
}

// eachReverse calls fn for the records before position i, newest first,
// until fn returns false.
func (l *auditLog) eachReverse(i int, fn func(*AuditRecord) bool) {
	for i--; i >= 0; i-- {
		if !fn(l.at(i)) {
			return
		}
	}
}
