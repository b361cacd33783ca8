"""MariaDB servers and clients."""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .config import COMMON_FLAGS, INSTALL_FLAGS, TARGET_FLAGS, UPSTREAM_FLAGS
from .util import BenchError, free_port, log

if TYPE_CHECKING:
    from .bench import Bench


class Server:
    def __init__(self, bench: "Bench", name: str, server_id: int, upstream: bool):
        self.bench = bench
        self.name = name
        self.server_id = server_id
        self.upstream = upstream
        self.dir = bench.work / name
        self.datadir = self.dir / "data"
        self.socket = self.dir / "mysqld.sock"
        self.error_log = self.dir / "error.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def flags(self) -> list[str]:
        return COMMON_FLAGS + (UPSTREAM_FLAGS if self.upstream else TARGET_FLAGS) + [
            f"--server-id={self.server_id}",
            f"--secure-file-priv={self.bench.files}",
        ]

    def start(self) -> None:
        # Its own tmpdir: bootstraps running side by side in one tmpdir collide on temp tables.
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            [self.bench.tools["mariadb-install-db"], "--no-defaults", f"--datadir={self.datadir}",
             "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db",
             f"--tmpdir={self.dir / 'tmp'}"]
            + INSTALL_FLAGS,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180)
        if r.returncode != 0:
            raise BenchError(f"{self.name}: mariadb-install-db failed:\n{r.stdout[-2000:]}")
        for attempt in range(3):
            self.port = free_port()
            argv = [self.bench.tools["mariadbd"], "--no-defaults", "--user=root",
                    f"--datadir={self.datadir}", f"--port={self.port}", "--bind-address=127.0.0.1",
                    f"--socket={self.socket}", f"--pid-file={self.dir / 'mysqld.pid'}",
                    f"--log-error={self.error_log}", f"--tmpdir={self.dir / 'tmp'}"] + self.flags()
            self.proc = self.bench.reaper.spawn(argv)
            deadline = time.monotonic() + 120 * self.bench.args.timeout_scale
            while True:
                ok = subprocess.run(
                    [self.bench.tools["mariadb"], "--no-defaults", f"--socket={self.socket}", "-uroot",
                     "-N", "-e", "SELECT 1"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30).returncode == 0
                if ok:
                    break
                if self.proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"{self.name}: mariadbd not answering after 120 s:\n{self.log_tail()}")
                time.sleep(0.1)
            if ok:
                break
            tail = self.log_tail()
            if "Bind on TCP/IP port" in tail and attempt < 2:
                log(f"{self.name}: port {self.port} taken, retrying on another")
                continue
            raise BenchError(f"{self.name}: mariadbd exited with {self.proc.returncode}:\n{tail}")
        subprocess.run(
            [self.bench.tools["mariadb"], "--no-defaults", f"--socket={self.socket}", "-uroot", "-e",
             "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; "
             "GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION"],
            check=True, timeout=60, stdout=subprocess.DEVNULL)
        log(f"{self.name}: mariadbd on 127.0.0.1:{self.port} (pid {self.proc.pid})")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no error log)"

    def client_argv(self, *extra: str) -> list[str]:
        return [self.bench.tools["mariadb"], "--no-defaults", "-h127.0.0.1", f"-P{self.port}", "-uroot",
                "--default-character-set=utf8mb4", *extra]

    def sql(self, query: str, timeout: float = 300.0, vertical: bool = False) -> list[list[str]]:
        """Runs `query` (one or more statements) and returns the rows of the last result."""
        argv = self.client_argv("-N", "-B", *(["-E"] if vertical else []), "-e", query)
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=timeout * self.bench.args.timeout_scale)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{self.name}: query timed out after {timeout:.0f} s: {query[:200]}")
        if r.returncode != 0:
            raise BenchError(f"{self.name}: query failed: {query[:300]}\n{r.stderr.strip()}")
        if vertical:
            out = []
            for line in r.stdout.splitlines():
                if ":" in line and not line.startswith("*"):
                    k, v = line.split(":", 1)
                    out.append([k.strip(), v.strip()])
            return out
        return [line.split("\t") for line in r.stdout.splitlines()]

    def one(self, query: str, timeout: float = 300.0) -> str:
        rows = self.sql(query, timeout)
        if not rows:
            raise BenchError(f"{self.name}: no rows from {query[:200]}")
        return rows[0][0]

    def master_status(self) -> tuple[str, int]:
        rows = self.sql("SHOW MASTER STATUS")
        return rows[0][0], int(rows[0][1])

    def shutdown(self) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            # The data is thrown away: skip InnoDB's shutdown flush.
            self.sql("SET GLOBAL innodb_fast_shutdown = 2", timeout=10)
        except Exception:  # noqa: BLE001 - best effort before SIGTERM
            pass
        self.bench.reaper.stop(self.proc, signal.SIGTERM, 120)


class Client:
    """A long-lived `mariadb` client for cheap polling (one query per line, no new process
    per query). Each query is followed by a sentinel SELECT, so a query that fails (its
    error goes to the log) still returns (no rows) instead of hanging."""

    END = "@@dm-bench-end@@"

    def __init__(self, server: Server, log_path: Path):
        self.server = server
        self.err = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.p = server.bench.reaper.spawn(
            server.client_argv("-N", "-B", "-n", "--force"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.broken = False
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def query(self, sql: str, timeout: float = 30.0) -> list[list[str]]:
        if self.broken:
            raise BenchError(f"{self.server.name}: polling client is broken")
        assert self.p.stdin is not None
        try:
            self.p.stdin.write(f"{sql};\nSELECT '{self.END}';\n")
            self.p.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            self.broken = True
            raise BenchError(f"{self.server.name}: polling client died: {e}")
        rows = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.001, left))
            except queue.Empty:
                self.broken = True
                raise BenchError(f"{self.server.name}: no answer in {timeout:.0f} s to {sql[:100]}")
            if line is None:
                self.broken = True
                raise BenchError(f"{self.server.name}: polling client exited")
            if line == self.END:
                return rows
            rows.append(line.split("\t"))

    def close(self) -> None:
        try:
            if self.p.stdin:
                self.p.stdin.close()
        except OSError:
            pass
        self.server.bench.reaper.stop(self.p, signal.SIGTERM, 10)
        self.err.close()
