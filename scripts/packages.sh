# Sourced by scripts/setup.sh and scripts/test.sh: the Debian packages dm-rs needs, by use.
# Decide by package, not by command: a command can exist while the package around it is
# incomplete (protoc without libprotobuf-dev's well-known .proto files).

# Build, tests and playground.
PACKAGES=(
  protobuf-compiler   # protoc, run by etcd-client's build script
  libprotobuf-dev     # google/protobuf/*.proto imported by etcd's protos (only *recommended* by protobuf-compiler)
  mariadb-server      # mariadbd, mariadb-install-db: upstream and downstream in tests and playground
  mariadb-client      # mariadb, mariadb-binlog: playground and fixtures
  etcd-server         # etcd: dm-master's member and the tests' etcd
  etcd-client         # etcdctl: playground and debugging
  python3             # free ports in the playground; the benchmark harness
  curl                # playground health checks
)

# Benchmark harness (scripts/setup.sh --bench; bench/run.sh).
BENCH_PACKAGES=(
  sysbench            # workload generator
  mydumper            # mydumper + myloader, the full-migration peer
  time                # GNU time: peak RSS of each process
)

# Prints the packages of "$@" that are not installed, one per line.
missing_packages() {
  local p status
  for p in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || echo "$p"
  done
}

# Compiles a .proto that imports a well-known type, as etcd-client's build does; fails naming
# the package that provides what is missing.
check_protoc() {
  local dir
  command -v protoc >/dev/null 2>&1 || { echo "setup: protoc not found (Debian package protobuf-compiler)" >&2; return 1; }
  dir=$(mktemp -d)
  printf 'syntax = "proto3";\nimport "google/protobuf/descriptor.proto";\nmessage M { google.protobuf.FileDescriptorProto f = 1; }\n' >"$dir/check.proto"
  if ! protoc -I"$dir" --descriptor_set_out="$dir/out.pb" "$dir/check.proto" 2>"$dir/err"; then
    echo "setup: protoc cannot compile a file importing google/protobuf/descriptor.proto: $(cat "$dir/err")" >&2
    echo "setup: install the Debian package libprotobuf-dev" >&2
    rm -rf "$dir"
    return 1
  fi
  rm -rf "$dir"
}
