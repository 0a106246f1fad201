//go:build tools

// Package tools pins dependencies that later packages import.
package tools

import (
	_ "github.com/anishathalye/porcupine"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/hashicorp/go-memdb"
	_ "github.com/hashicorp/go-msgpack/v2/codec"
	_ "github.com/hashicorp/memberlist"
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/raft-autopilot"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "github.com/hashicorp/serf/serf"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/pressly/goose/v3"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/valyala/fasthttp"
	_ "go.etcd.io/bbolt"
	_ "gopkg.in/yaml.v3"
)
