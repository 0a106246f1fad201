// Package cache is the gateway's response cache: a bounded in-memory LRU
// shared by every route that enables it. Only 200 answers to GET are stored
// (and served to GET and HEAD); Cache-Control no-store, private, no-cache
// and max-age / s-maxage and Vary are honoured (RFC 9111, simplified: no
// revalidation).
package cache

import (
	"bytes"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// entryOverhead approximates the bookkeeping bytes of an entry.
const entryOverhead = 200

// Cache is safe for concurrent use.
type Cache struct {
	maxBytes int
	maxEntry int
	now      func() time.Time

	mu    sync.Mutex
	size  int
	items map[string]*entry
	head  *entry // most recently used
	tail  *entry
}

type entry struct {
	key        string
	vary       []string // marker entry: names of the request headers the answer varies on
	header     [][2][]byte
	body       []byte
	stored     time.Time
	expires    time.Time
	size       int
	prev, next *entry
}

// New returns a cache of at most maxBytes holding bodies up to maxEntry bytes.
// now may be nil (time.Now).
func New(maxBytes, maxEntry int, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{maxBytes: maxBytes, maxEntry: maxEntry, now: now, items: map[string]*entry{}}
}

// Lookup serves ctx from the cache when it holds a fresh answer for the
// request under namespace ns (the route id). It returns true on a hit, with
// the answer written and X-Cache: HIT set.
func (c *Cache) Lookup(ctx *fasthttp.RequestCtx, ns string) bool {
	if !ctx.IsGet() && !ctx.IsHead() {
		return false
	}
	if rc := ctx.Request.Header.Peek("Cache-Control"); hasDirective(rc, "no-cache") || hasDirective(rc, "no-store") {
		return false
	}
	var kb [512]byte
	key := appendKey(kb[:0], ctx, ns)
	now := c.now()
	c.mu.Lock()
	e := c.items[string(key)]
	if e != nil && e.vary != nil {
		key = appendVary(key, ctx, e.vary)
		e = c.items[string(key)]
	}
	if e == nil || e.vary != nil {
		c.mu.Unlock()
		return false
	}
	if !now.Before(e.expires) {
		c.remove(e)
		c.mu.Unlock()
		return false
	}
	c.moveToFront(e)
	c.mu.Unlock()

	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(fasthttp.StatusOK)
	for _, kv := range e.header {
		resp.Header.AddBytesKV(kv[0], kv[1])
	}
	var ab [20]byte
	resp.Header.SetBytesV("Age", strconv.AppendInt(ab[:0], int64(now.Sub(e.stored)/time.Second), 10))
	resp.Header.Set("X-Cache", "HIT")
	resp.SetBodyRaw(e.body)
	return true
}

// Store keeps the upstream answer in ctx for ttl (or less, per its
// Cache-Control) when it is cacheable, and marks it X-Cache: MISS.
func (c *Cache) Store(ctx *fasthttp.RequestCtx, ns string, ttl time.Duration) {
	resp := &ctx.Response
	resp.Header.Set("X-Cache", "MISS")
	if !ctx.IsGet() || resp.StatusCode() != fasthttp.StatusOK || resp.IsBodyStream() {
		return
	}
	if rc := ctx.Request.Header.Peek("Cache-Control"); hasDirective(rc, "no-store") {
		return
	}
	cc := resp.Header.Peek("Cache-Control")
	if hasDirective(cc, "no-store") || hasDirective(cc, "private") || hasDirective(cc, "no-cache") {
		return
	}
	if len(ctx.Request.Header.Peek("Authorization")) > 0 && !hasDirective(cc, "public") && !hasDirective(cc, "s-maxage") {
		return
	}
	if len(resp.Header.Peek("Set-Cookie")) > 0 {
		return
	}
	if age, ok := directiveSeconds(cc, "s-maxage"); ok {
		ttl = min(ttl, age)
	} else if age, ok := directiveSeconds(cc, "max-age"); ok {
		ttl = min(ttl, age)
	}
	if ttl <= 0 {
		return
	}
	body := resp.Body()
	if len(body) > c.maxEntry {
		return
	}
	vary := varyNames(resp.Header.Peek("Vary"))
	if len(vary) == 1 && vary[0] == "*" {
		return
	}
	e := &entry{body: append([]byte(nil), body...)}
	for k, v := range resp.Header.All() {
		if skipHeader(k) {
			continue
		}
		e.header = append(e.header, [2][]byte{append([]byte(nil), k...), append([]byte(nil), v...)})
		e.size += len(k) + len(v) + 32
	}
	key := appendKey(nil, ctx, ns)
	now := c.now()
	e.stored, e.expires = now, now.Add(ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(vary) > 0 {
		marker := &entry{key: string(key), vary: vary, expires: e.expires, size: len(key) + entryOverhead}
		c.put(marker)
		key = appendVary(key, ctx, vary)
	}
	e.key = string(key)
	e.size += len(e.key) + len(e.body) + entryOverhead
	c.put(e)
}

// Len returns the number of entries (vary markers included).
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// put inserts e, replacing an entry of the same key, and evicts from the
// tail until the cache fits. Called with c.mu held.
func (c *Cache) put(e *entry) {
	if old := c.items[e.key]; old != nil {
		c.remove(old)
	}
	if e.size > c.maxBytes {
		return
	}
	c.items[e.key] = e
	c.size += e.size
	c.pushFront(e)
	for c.size > c.maxBytes && c.tail != nil {
		c.remove(c.tail)
	}
}

func (c *Cache) remove(e *entry) {
	delete(c.items, e.key)
	c.size -= e.size
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (c *Cache) pushFront(e *entry) {
	e.prev, e.next = nil, c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *Cache) moveToFront(e *entry) {
	if c.head == e {
		return
	}
	c.remove(e)
	c.items[e.key] = e
	c.size += e.size
	c.pushFront(e)
}

// appendKey appends ns, host and request URI; GET and HEAD share entries.
func appendKey(b []byte, ctx *fasthttp.RequestCtx, ns string) []byte {
	b = append(b, ns...)
	b = append(b, 0)
	b = append(b, ctx.Host()...)
	b = append(b, 0)
	return append(b, ctx.RequestURI()...)
}

func appendVary(b []byte, ctx *fasthttp.RequestCtx, names []string) []byte {
	for _, n := range names {
		b = append(b, 0)
		b = append(b, ctx.Request.Header.Peek(n)...)
	}
	return b
}

func varyNames(v []byte) []string {
	var out []string
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		if tok = bytes.TrimSpace(tok); len(tok) > 0 {
			out = append(out, string(tok))
		}
	}
	return out
}

func skipHeader(k []byte) bool {
	for _, s := range []string{"Content-Length", "Date", "Set-Cookie", "Connection", "Transfer-Encoding", "X-Cache", "Age",
		"X-Request-Id", "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"} {
		if bytes.EqualFold(k, []byte(s)) {
			return true
		}
	}
	return false
}

// hasDirective reports whether a Cache-Control value holds directive name.
func hasDirective(cc []byte, name string) bool {
	_, ok := directive(cc, name)
	return ok
}

// directive returns the argument of a Cache-Control directive and whether it is present.
func directive(cc []byte, name string) ([]byte, bool) {
	for len(cc) > 0 {
		var tok []byte
		if i := bytes.IndexByte(cc, ','); i >= 0 {
			tok, cc = cc[:i], cc[i+1:]
		} else {
			tok, cc = cc, nil
		}
		tok = bytes.TrimSpace(tok)
		k, v, _ := bytes.Cut(tok, []byte("="))
		if bytes.EqualFold(bytes.TrimSpace(k), []byte(name)) {
			return bytes.Trim(bytes.TrimSpace(v), `"`), true
		}
	}
	return nil, false
}

func directiveSeconds(cc []byte, name string) (time.Duration, bool) {
	v, ok := directive(cc, name)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 0 {
		return 0, true // malformed: treat as stale (RFC 9111 §4.2.1)
	}
	return time.Duration(n) * time.Second, true
}
