package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// nginxConf is a keep-alive reverse proxy equivalent to the gateway's plain
// route: HTTP/1.1 to a pooled upstream, no access log, one worker per CPU.
const nginxConf = `worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    keepalive_requests 1000000;
    upstream backend {
        server %[3]s;
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen %[2]s;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering on;
        }
    }
}
`

func startNginx(procs *processes, dir, listen, upstream string) (int, error) {
	ndir := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(ndir, 0o755); err != nil {
		return 0, err
	}
	conf := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, ndir, listen, upstream)), 0o644); err != nil {
		return 0, err
	}
	bin, err := lookPath("nginx")
	if err != nil {
		return 0, err
	}
	return procs.start(filepath.Join(ndir, "stdout.log"), nil, bin, "-p", ndir, "-c", conf)
}
