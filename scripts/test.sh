#!/usr/bin/env bash
# Runs the whole test suite: set-up first (installs missing Debian packages, checks them, builds), then the
# unit tests and the integration tests (real MariaDB and etcd on 127.0.0.1, free ports, temp
# dirs). Extra arguments go to the integration test binary, e.g. `scripts/test.sh servers`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-build --bench
# Before building: every package the set-up promises is installed (dpkg-query, seconds), so a
# package installed by hand on one machine and missing on another shows here, not as a build
# or test failure minutes later.
scripts/setup.sh --check --bench
cargo build --all-targets
# The integration tests share one upstream, one downstream and one etcd per test binary, so
# they run in one process (cargo test), not one process per test.
cargo test --lib --bins --test it -- "$@"

# ---- benchmark harness, quick mode (bench/, issue 6) ---------------------------------------
# After the cargo tests: every benchmark scenario at tiny sizes, correctness only (CHECKSUM
# TABLE and row counts against the upstream); prints its table and fails the run when any
# check fails. See bench/README.md.
echo
echo "test: bench/run.sh --quick"
bench/run.sh --quick
