#!/usr/bin/env bash
# The playground: a private upstream MariaDB (binlog ROW), a downstream MariaDB, a dm-master
# (running its own etcd member) and a dm-worker, all on 127.0.0.1 with free ports and a temp
# directory. Once everything is healthy it runs the main job through dmctl: a source, a task
# (task-mode all: dump, load, then binlog replication) over a small `shop` database, checks
# that rows written before and after the start arrive downstream, and prints query-status.
# Then it stops and cleans up, unless --keep is given (then it runs until Ctrl-C).
#   scripts/playground.sh [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

scripts/setup.sh --no-build >/dev/null
cargo build --bins -q
BIN=target/debug
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dm-rs-playground.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 0 ]; then rm -rf "$WORK"; else echo "playground: logs kept in $WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds or time runs out.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "playground: $what not ready after ${secs}s" >&2; return 1; fi
    sleep 0.1
  done
}

start_mariadb() { # NAME PORT EXTRA-FLAGS...
  local name=$1 port=$2; shift 2
  local dir="$WORK/$name"
  # A tmpdir of its own: a starting mariadbd deletes the `#sql*` files of a shared /tmp.
  mkdir -p "$dir/tmp"
  mariadb-install-db --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" --user=root \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1
  "$MARIADBD" --no-defaults --user=root --datadir="$dir/data" --tmpdir="$dir/tmp" --port="$port" \
    --bind-address=127.0.0.1 --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" \
    --log-error="$dir/error.log" --skip-name-resolve --character-set-server=utf8mb4 \
    --innodb-buffer-pool-size=128M "$@" 2>>"$dir/error.log" &
  PIDS+=($!)
  wait_for "$name" 30 mariadb --no-defaults --socket="$dir/mysqld.sock" -uroot -e "SELECT 1"
  mariadb --no-defaults --socket="$dir/mysqld.sock" -uroot -e \
    "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION"
  echo "playground: $name mariadb on 127.0.0.1:$port (pid ${PIDS[-1]})"
}

UP=$(free_port); DOWN=$(free_port)
start_mariadb upstream "$UP" --log-bin=mysql-bin --binlog-format=ROW --binlog-row-image=FULL --server-id=1
start_mariadb downstream "$DOWN" --skip-log-bin --server-id=2

MASTER=$(free_port); PEER=$(free_port); WORKER=$(free_port)
"$BIN/dm-master" --name master1 --master-addr "127.0.0.1:$MASTER" --data-dir "$WORK/master1" \
  --peer-urls "http://127.0.0.1:$PEER" --initial-cluster "master1=http://127.0.0.1:$PEER" \
  --log-file "$WORK/master1.log" &
PIDS+=($!)
wait_for dm-master 30 curl -sf "http://127.0.0.1:$MASTER/status"
echo "playground: dm-master on 127.0.0.1:$MASTER (pid ${PIDS[-1]}), its etcd's client API on the same port"

"$BIN/dm-worker" --name worker1 --worker-addr "127.0.0.1:$WORKER" --join "127.0.0.1:$MASTER" \
  --log-file "$WORK/worker1.log" &
PIDS+=($!)
wait_for dm-worker 30 sh -c "curl -sf http://127.0.0.1:$WORKER/status | grep -q '\"reachable\":true'"
echo "playground: dm-worker on 127.0.0.1:$WORKER (pid ${PIDS[-1]})"

echo
echo "upstream:   $(mariadb --no-defaults -h127.0.0.1 -P"$UP" -uroot -N -e "SELECT CONCAT(VERSION(), ' binlog_format=', @@binlog_format, ' log_bin=', @@log_bin)")"
echo "downstream: $(mariadb --no-defaults -h127.0.0.1 -P"$DOWN" -uroot -N -e "SELECT VERSION()")"
echo "dm-master:  $(curl -s "http://127.0.0.1:$MASTER/status")"
echo "dm-worker:  $(curl -s "http://127.0.0.1:$WORKER/status")"
echo
echo "playground: all healthy"

# ---- the main job, through dmctl --------------------------------------------------------
up_sql() { mariadb --no-defaults -h127.0.0.1 -P"$UP" -uroot -N -e "$1"; }
down_sql() { mariadb --no-defaults -h127.0.0.1 -P"$DOWN" -uroot -N -e "$1"; }
dmctl() { "$BIN/dmctl" --master-addr "127.0.0.1:$MASTER" "$@"; }
up_sql "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40), qty INT);
        INSERT INTO shop.orders SELECT seq, CONCAT('item-', seq), seq % 7 FROM shop.seq_1_to_1000"
cat >"$WORK/source.yaml" <<YAML
source-id: "upstream-01"
from: {host: "127.0.0.1", port: $UP, user: "root", password: ""}
YAML
cat >"$WORK/task.yaml" <<YAML
name: "playground"
task-mode: all
target-database: {host: "127.0.0.1", port: $DOWN, user: "root", password: ""}
block-allow-list:
  shop-only: {do-dbs: ["shop"]}
loaders:
  here: {dir: "$WORK/dump"}
mysql-instances:
  - source-id: "upstream-01"
    block-allow-list: "shop-only"
    loader-config-name: "here"
YAML
echo "\$ dmctl operate-source create source.yaml"; dmctl operate-source create "$WORK/source.yaml"
echo "\$ dmctl start-task task.yaml"; dmctl start-task "$WORK/task.yaml"
synced() { dmctl query-status playground | grep -q '"unit": "Sync"'; }
wait_for "the task to reach the sync unit" 60 synced
up_sql "INSERT INTO shop.orders SELECT seq, CONCAT('late-', seq), 1 FROM shop.seq_1001_to_1500; UPDATE shop.orders SET qty = qty + 1 WHERE id <= 100"
same() { [ "$(up_sql 'CHECKSUM TABLE shop.orders' | cut -f2)" = "$(down_sql 'CHECKSUM TABLE shop.orders' 2>/dev/null | cut -f2)" ]; }
wait_for "shop.orders to converge downstream" 30 same
echo "\$ dmctl query-status playground"; dmctl query-status playground
echo "playground: shop.orders has $(down_sql 'SELECT COUNT(*) FROM shop.orders') rows downstream, checksum equal to the upstream"
if [ "$KEEP" = 0 ]; then
  echo "\$ dmctl stop-task playground"; dmctl stop-task playground >/dev/null && echo "playground: task stopped"
fi
if [ "$KEEP" = 1 ]; then
  echo "playground: running; Ctrl-C stops everything (work dir $WORK)"
  wait
fi
