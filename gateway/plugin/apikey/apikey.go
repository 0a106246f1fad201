// Package apikey authenticates gateway requests with API keys kept in the
// replicated configuration: one config key per API key under
// gateway/api-keys/<name>, whose value is either the key as a JSON string
// (consumer = <name>) or {"key": "...", "consumer": "...", "routes": ["id"]}.
package apikey

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ConfigPrefix is the config-store prefix of API keys.
const ConfigPrefix = "gateway/api-keys/"

// Header carries the key in requests; it is not forwarded upstream.
const Header = "X-API-Key"

// MinKeyLen is the shortest key accepted in the configuration.
const MinKeyLen = 16

// Set is an immutable set of API keys. Keys are held as SHA-256 digests so
// that a lookup takes the same time whatever prefix of a key matches.
type Set struct {
	byHash map[[32]byte]Consumer
}

// Consumer is who a key belongs to.
type Consumer struct {
	Name   string
	routes map[string]bool // nil: every route with auth type "key"
}

// Allows reports whether the consumer may use route id.
func (c Consumer) Allows(id string) bool { return c.routes == nil || c.routes[id] }

type entry struct {
	Key      string   `json:"key"`
	Consumer string   `json:"consumer"`
	Routes   []string `json:"routes"`
}

// Builder accumulates config entries into a Set.
type Builder struct {
	set  Set
	errs []error
}

// NewBuilder returns an empty builder.
func NewBuilder() *Builder { return &Builder{set: Set{byHash: map[[32]byte]Consumer{}}} }

// Add parses the value of config key name (the full key, with ConfigPrefix).
func (b *Builder) Add(name string, raw []byte) {
	short := strings.TrimPrefix(name, ConfigPrefix)
	var e entry
	if err := json.Unmarshal(raw, &e.Key); err != nil {
		if err := json.Unmarshal(raw, &e); err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s: value must be a string or {\"key\",\"consumer\",\"routes\"}: %w", name, err))
			return
		}
	}
	if len(e.Key) < MinKeyLen {
		b.errs = append(b.errs, fmt.Errorf("%s: key must be at least %d characters", name, MinKeyLen))
		return
	}
	c := Consumer{Name: e.Consumer}
	if c.Name == "" {
		c.Name = short
	}
	if e.Routes != nil {
		c.routes = map[string]bool{}
		for _, r := range e.Routes {
			c.routes[r] = true
		}
	}
	b.set.byHash[sha256.Sum256([]byte(e.Key))] = c
}

// Build returns the set and the entries that were refused.
func (b *Builder) Build() (*Set, error) { return &b.set, errors.Join(b.errs...) }

// Len returns the number of keys.
func (s *Set) Len() int { return len(s.byHash) }

// Lookup returns the consumer of key.
func (s *Set) Lookup(key []byte) (Consumer, bool) {
	if len(key) == 0 {
		return Consumer{}, false
	}
	c, ok := s.byHash[sha256.Sum256(key)]
	return c, ok
}
