package archive

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Pool defaults.
const (
	DefaultMaxConns       = 4
	DefaultConnectTimeout = 5 * time.Second
)

// ErrPoolClosed is returned by a closed pool.
var ErrPoolClosed = errors.New("archive: connection pool closed")

// Pool is a small pool of pgx connections. (pgxpool needs
// github.com/jackc/puddle/v2, which go.mod does not list; the archive needs
// little: one connection for the archiver, a few for GET /audit.)
// Connections are dialed lazily, so a pool opens while PostgreSQL is down.
type Pool struct {
	cfg  *pgx.ConnConfig
	sem  chan struct{} // one token per open or opening connection
	idle chan *pgx.Conn

	mu     sync.Mutex
	closed bool
}

// PoolConfig is a parsed --postgres-url.
type PoolConfig struct {
	Conn     *pgx.ConnConfig
	MaxConns int
	// Redacted is the URL without its password, for logs.
	Redacted string
}

// ParseURL parses a PostgreSQL URL or DSN. Beyond what pgx reads (sslmode,
// connect_timeout, search_path and other run-time parameters...), it takes
// pool_max_conns (default 4). connect_timeout defaults to 5 s.
func ParseURL(raw string) (PoolConfig, error) {
	pc := PoolConfig{MaxConns: DefaultMaxConns, Redacted: Redact(raw)}
	connStr, maxConns, err := stripPoolParams(raw)
	if err != nil {
		return pc, err
	}
	if maxConns > 0 {
		pc.MaxConns = maxConns
	}
	cfg, err := pgx.ParseConfig(connStr)
	if err != nil {
		// pgx's message may quote the URL: never echo a password.
		return pc, fmt.Errorf("invalid PostgreSQL URL %s", pc.Redacted)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "nexus"
	}
	pc.Conn = cfg
	return pc, nil
}

// stripPoolParams removes pool_max_conns (PostgreSQL would refuse it as a
// run-time parameter) and returns its value.
func stripPoolParams(raw string) (string, int, error) {
	parse := func(v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return 0, fmt.Errorf("invalid PostgreSQL URL: pool_max_conns %q must be an integer in 1..1000", v)
		}
		return n, nil
	}
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := url.Parse(raw)
		if err != nil {
			return "", 0, fmt.Errorf("invalid PostgreSQL URL %s", Redact(raw))
		}
		q := u.Query()
		n := 0
		if v := q.Get("pool_max_conns"); v != "" {
			if n, err = parse(v); err != nil {
				return "", 0, err
			}
		}
		q.Del("pool_max_conns")
		u.RawQuery = q.Encode()
		return u.String(), n, nil
	}
	// key=value DSN
	var kept []string
	n := 0
	for _, f := range strings.Fields(raw) {
		if v, ok := strings.CutPrefix(f, "pool_max_conns="); ok {
			var err error
			if n, err = parse(v); err != nil {
				return "", 0, err
			}
			continue
		}
		kept = append(kept, f)
	}
	return strings.Join(kept, " "), n, nil
}

var (
	dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)
	urlPassword = regexp.MustCompile(`(://[^:/@]*:)[^@]*@`)
	qryPassword = regexp.MustCompile(`(?i)([?&]password=)[^&]*`)
)

// Redact returns a URL or DSN with its password replaced by "xxxxx".
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	if strings.Contains(raw, "://") {
		// Unparseable URL: still never show what looks like a password.
		return qryPassword.ReplaceAllString(urlPassword.ReplaceAllString(raw, "${1}xxxxx@"), "${1}xxxxx")
	}
	return dsnPassword.ReplaceAllString(raw, "${1}xxxxx")
}

// NewPool returns a pool; it dials nothing yet.
func NewPool(pc PoolConfig) *Pool {
	return &Pool{cfg: pc.Conn, sem: make(chan struct{}, pc.MaxConns), idle: make(chan *pgx.Conn, pc.MaxConns)}
}

// With runs fn on a pooled connection. A connection that broke (closed,
// or fn failed with something other than a server error) is discarded.
func (p *Pool) With(ctx context.Context, fn func(conn *pgx.Conn) error) error {
	conn, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	err = fn(conn)
	p.release(conn, err)
	return err
}

func (p *Pool) acquire(ctx context.Context) (*pgx.Conn, error) {
	for {
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return nil, ErrPoolClosed
		}
		select {
		case c := <-p.idle:
			if c.IsClosed() {
				<-p.sem
				continue
			}
			return c, nil
		default:
		}
		select {
		case c := <-p.idle:
			if c.IsClosed() {
				<-p.sem
				continue
			}
			return c, nil
		case p.sem <- struct{}{}:
			c, err := pgx.ConnectConfig(ctx, p.cfg)
			if err != nil {
				<-p.sem
				return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
			}
			return c, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (p *Pool) release(c *pgx.Conn, err error) {
	var pgErr *pgconn.PgError
	broken := c.IsClosed() || (err != nil && !errors.As(err, &pgErr)) || c.PgConn().TxStatus() != 'I'
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if broken || closed {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.Close(ctx)
		cancel()
		<-p.sem
		return
	}
	p.idle <- c
}

// Close closes idle connections; connections in use close on release.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case c := <-p.idle:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = c.Close(ctx)
			cancel()
			<-p.sem
		default:
			return
		}
	}
}
