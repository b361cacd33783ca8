#!/usr/bin/env bash
# The benchmark harness (issue 6): dm-rs side by side with mydumper/myloader, mariadb-dump,
# MariaDB replication, the target's write limit and mariadb-binlog, in one command.
#   bench/run.sh                     every scenario, default sizes (release binaries)
#   bench/run.sh --quick             tiny sizes, correctness only (debug binaries; CI)
#   bench/run.sh --scenario full,decode --tables 8 --table-size 100000 --threads 8
# It installs the Debian packages it needs when they are missing (sysbench, mydumper,
# mariadb-server, mariadb-client, time), builds the binaries and the decode_binlog example,
# then runs bench/run.py with the same arguments (`bench/run.sh --help` lists them).
# Results: a table on stdout and, except with --quick, bench/results/<UTC time>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# The servers and tools (sysbench, mydumper, mariadb-*, GNU time), installed when missing.
scripts/setup.sh --no-build --bench

quick=0
release=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    --release) release=1 ;;
    -h|--help) exec python3 bench/run.py --help ;;
  esac
done

if [ "$quick" = 1 ] && [ "$release" = 0 ]; then
  echo "bench: cargo build --bins --examples (debug)"
  cargo build --bins --examples -q
else
  echo "bench: cargo build --release --bins --examples"
  cargo build --release --bins --examples -q
fi

export BENCH_COMMAND="bench/run.sh${*:+ $*}"
# The interpreter itself (not a pyenv-style shim that would run it as a child), so that a
# signal sent to this script reaches the harness, which then stops what it started.
PY=$(python3 -c 'import sys; print(sys.executable)')
exec "$PY" bench/run.py "$@"
