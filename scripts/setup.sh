#!/usr/bin/env bash
# Sets up a Debian machine for dm-rs: installs the servers and tools the tests and the
# playground use (only those missing), then builds the project.
#   scripts/setup.sh            install what is missing, then `cargo build --all-targets`
#   scripts/setup.sh --no-build install only
#   scripts/setup.sh --bench     also the benchmark harness's tools (sysbench, mydumper, time)
set -euo pipefail
cd "$(dirname "$0")/.."

# command → Debian package providing it
declare -A NEED=(
  [mariadbd]=mariadb-server
  [mariadb-install-db]=mariadb-server
  [mariadb]=mariadb-client
  [mariadb-binlog]=mariadb-client
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [protoc]=protobuf-compiler
  [python3]=python3
  [curl]=curl
)

build=1
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --bench) NEED[sysbench]=sysbench; NEED[mydumper]=mydumper; NEED[myloader]=mydumper; NEED[mariadb-dump]=mariadb-client ;;
    *) echo "setup: unknown option $a" >&2; exit 2 ;;
  esac
done

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
for cmd in "${!NEED[@]}"; do
  have "$cmd" || missing+=("${NEED[$cmd]}")
done
# GNU time (peak RSS in the benchmarks) is checked by path: `time` is a shell keyword.
if [[ -v NEED[sysbench] ]] && [ ! -x /usr/bin/time ]; then missing+=(time); fi

if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "setup: installing Debian packages: $pkgs"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root or sudo to install: $pkgs" >&2; exit 1; }
    SUDO="sudo"
  fi
  # Keep package scripts from starting the system's own mariadb/etcd services.
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  for cmd in "${!NEED[@]}"; do
    have "$cmd" || { echo "setup: '$cmd' still missing after installing ${NEED[$cmd]}" >&2; exit 1; }
  done
else
  echo "setup: servers and tools present"
fi

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }

if [ "$build" = 1 ]; then
  echo "setup: cargo build --all-targets"
  cargo build --all-targets
fi
