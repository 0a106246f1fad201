// Command fakeagent imitates the parts of `nexus agent` that proccluster's own
// tests need: the flags, /health, /ready, /cluster/leader, a node-id file in
// the data dir, JSON logs on stderr and exit 0 on SIGTERM. The "leader" is the
// first node of the --join list whose /health answers.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func logj(msg string, kv ...any) {
	m := map[string]any{"time": time.Now().Format(time.RFC3339Nano), "msg": msg}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	fmt.Fprintln(os.Stderr, string(b))
}

func main() {
	if len(os.Args) < 2 || os.Args[1] != "agent" {
		fmt.Fprintln(os.Stderr, "usage: fakeagent agent ...")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("agent", flag.ExitOnError)
	node := fs.String("node", "", "")
	dataDir := fs.String("data-dir", "", "")
	fs.String("bind", "", "")
	fs.Int("raft-port", 0, "")
	fs.Int("gossip-port", 0, "")
	httpAddr := fs.String("http-addr", "", "")
	fs.String("gateway-addr", "", "")
	fs.String("dns-addr", "", "")
	fs.Int("bootstrap-expect", 0, "")
	fs.String("log-format", "json", "")
	var joins multi
	fs.Var(&joins, "join", "")
	fs.Parse(os.Args[2:])

	idFile := filepath.Join(*dataDir, "node-id")
	if b, err := os.ReadFile(idFile); err == nil && strings.TrimSpace(string(b)) != *node {
		logj("data dir belongs to another node", "level", "ERROR", "data_dir_node", strings.TrimSpace(string(b)), "node", *node)
		os.Exit(1)
	}
	if err := os.WriteFile(idFile, []byte(*node+"\n"), 0o644); err != nil {
		logj("write node-id", "error", err.Error())
		os.Exit(1)
	}

	_, port, _ := net.SplitHostPort(*httpAddr)
	var peers []string
	for _, j := range joins {
		host, _, _ := net.SplitHostPort(j)
		peers = append(peers, net.JoinHostPort(host, port))
	}
	cl := &http.Client{Timeout: 200 * time.Millisecond}
	leader := func() (string, string) {
		for _, p := range peers {
			resp, err := cl.Get("http://" + p + "/health")
			if err != nil {
				continue
			}
			var h struct{ Node string }
			json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return h.Node, p
			}
		}
		return "", ""
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"status": "ok", "node": *node})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if n, _ := leader(); n == "" {
			w.WriteHeader(503)
		}
	})
	mux.HandleFunc("GET /cluster/leader", func(w http.ResponseWriter, r *http.Request) {
		n, addr := leader()
		if n == "" {
			w.WriteHeader(503)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"node": n, "raft_addr": "", "http_addr": addr})
	})
	srv := &http.Server{Addr: *httpAddr, Handler: mux}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		logj("listen", "error", err.Error())
		os.Exit(1)
	}
	logj("serving", "node", *node, "addr", *httpAddr)
	go srv.Serve(ln)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	logj("stopping", "node", *node)
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Shutdown(sctx)
}
