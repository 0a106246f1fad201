#!/usr/bin/env bash
# Starts a local 3-node Nexus cluster on 127.0.0.11, .12 and .13 in the
# foreground. Ctrl-C stops all three (SIGTERM: a stop, not a leave; the data
# stays in .dev/cluster and a second run restarts the same cluster).
set -euo pipefail
NEXUS=${1:-bin/nexus}
DIR=${NEXUS_CLUSTER_DIR:-.dev/cluster}
mkdir -p "$DIR"
pids=()
stop() {
  trap - INT TERM
  echo "stopping nexus nodes: ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM
for i in 1 2 3; do
  ip=127.0.0.1$i
  mkdir -p "$DIR/n$i"
  "$NEXUS" agent --node "n$i" --data-dir "$DIR/n$i" --bind "$ip" \
    --http-addr "$ip:8500" --gateway-addr "$ip:8080" \
    --bootstrap-expect 3 --join 127.0.0.11:8301 --join 127.0.0.12:8301 --join 127.0.0.13:8301 \
    --log-format text > >(sed -u "s/^/[n$i] /") 2>&1 &
  pids+=($!)
done
echo "nexus cluster: admin API on 127.0.0.11:8500, 127.0.0.12:8500, 127.0.0.13:8500 (Ctrl-C stops)"
wait
