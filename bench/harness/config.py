"""Settings shared by every part of the harness: paths, scenario names, server flags."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
SCENARIOS = ["full", "incremental", "decode", "write-limit", "lag"]
DB = "sbtest"

# Server settings: the same for the upstream and for every apply target (documented in
# bench/README.md). Only binlog settings differ: the upstream writes a ROW binlog, the
# targets (including the MariaDB replicas) write none.
COMMON_FLAGS = [
    "--innodb-buffer-pool-size=1G",
    "--innodb-log-file-size=256M",
    "--innodb-flush-log-at-trx-commit=2",
    "--sync-binlog=0",
    "--character-set-server=utf8mb4",
    "--skip-name-resolve",
    "--max-connections=500",
    "--max-allowed-packet=256M",
    "--performance-schema=OFF",
]
UPSTREAM_FLAGS = ["--log-bin=mysql-bin", "--binlog-format=ROW", "--binlog-row-image=FULL"]
TARGET_FLAGS = ["--skip-log-bin"]
# The bytes of InnoDB flags mariadb-install-db must agree with (log file size).
INSTALL_FLAGS = ["--innodb-log-file-size=256M", "--innodb-buffer-pool-size=1G"]
