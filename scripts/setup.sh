#!/usr/bin/env bash
# Sets up a Debian machine for dm-rs: installs the Debian packages the build, the tests, the
# playground and (with --bench) the benchmark need — deciding by *package* (dpkg-query), never
# by whether some command happens to exist — checks that the build's real needs are met, then
# builds the project.
#   scripts/setup.sh             install what is missing, check, then `cargo build --all-targets`
#   scripts/setup.sh --no-build  install and check only
#   scripts/setup.sh --bench     also the benchmark harness's packages
#   scripts/setup.sh --check     install nothing: fail (naming the packages) if any is missing
set -euo pipefail
cd "$(dirname "$0")/.."

# The package lists live in one file so that scripts/test.sh checks the same promise.
# shellcheck source=scripts/packages.sh
. scripts/packages.sh

build=1
check_only=0
want=("${PACKAGES[@]}")
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --bench) want+=("${BENCH_PACKAGES[@]}") ;;
    --check) check_only=1; build=0 ;;
    *) echo "setup: unknown option $a" >&2; exit 2 ;;
  esac
done

mapfile -t missing < <(missing_packages "${want[@]}")

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$check_only" = 1 ]; then
    echo "setup: Debian packages missing: ${missing[*]} (run scripts/setup.sh --no-build)" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  # Keep package scripts from starting the system's own mariadb/etcd services.
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Only what is listed is installed (no recommends): every package the project needs is named
  # in scripts/packages.sh, so a clean machine and this one get the same set.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  mapfile -t still < <(missing_packages "${want[@]}")
  if [ ${#still[@]} -gt 0 ]; then
    echo "setup: still not installed after apt-get: ${still[*]}" >&2
    exit 1
  fi
else
  echo "setup: Debian packages present (${#want[@]})"
fi

# What the build really needs, checked by doing it: etcd-client's build script runs protoc on
# files that import protobuf's well-known types (google/protobuf/*.proto, in libprotobuf-dev).
check_protoc

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }

if [ "$build" = 1 ]; then
  echo "setup: cargo build --all-targets"
  cargo build --all-targets
fi
