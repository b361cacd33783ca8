#!/usr/bin/env python3
"""dm-rs benchmark harness (issue 6): dm-rs side by side with mydumper/myloader,
mariadb-dump, MariaDB's own replication, the target's write limit and mariadb-binlog.

Run it through bench/run.sh (installs tools, builds); see bench/README.md for what each
scenario measures and how. Standard library only.

    bench/run.sh                      # every scenario, default sizes (~10 min on 2 cores)
    bench/run.sh --quick              # tiny sizes, correctness only (CI, < 2 min)
    bench/run.sh --scenario full,decode --tables 8 --table-size 100000 --threads 8

Everything runs on 127.0.0.1 on free ports, in a temp dir that is removed at the end; only
processes this script started are stopped, by PID. Exit status: 0 when every correctness
check passed, 1 when one failed (or a step failed), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import os
import platform
import queue
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
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



class BenchError(Exception):
    """A step failed: the scenario is reported as FAIL with this message."""


def log(msg: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {msg}", flush=True)


def which(cmd: str) -> str | None:
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        p = Path(d) / cmd
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return shutil.which(cmd)


def need(cmd: str, package: str) -> str:
    p = which(cmd)
    if not p:
        raise BenchError(f"`{cmd}` not found: install the Debian package `{package}` (bench/run.sh does)")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


# --------------------------------------------------------------------------------------
# Processes: every child is tracked and stopped by PID at the end (also on errors/Ctrl-C).
# --------------------------------------------------------------------------------------


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


class Reaper:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.lock = threading.Lock()
        self.time_bin = "/usr/bin/time" if Path("/usr/bin/time").exists() else None

    def spawn(self, argv: list[str], *, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
              stderr=subprocess.DEVNULL, text: bool = False, rss_file: Path | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        """Starts `argv` in its own session (so a terminal's Ctrl-C reaches only this
        script, which then stops everything in order). With `rss_file` it runs under
        `/usr/bin/time -v -o rss_file` to record its peak RSS."""
        wrapped = False
        if rss_file is not None and self.time_bin:
            argv = [self.time_bin, "-v", "-o", str(rss_file)] + argv
            wrapped = True
        p = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, text=text,
                             start_new_session=True, cwd=cwd)
        p.bench_wrapped = wrapped  # type: ignore[attr-defined]
        with self.lock:
            self.procs.append(p)
        return p

    def send(self, p: subprocess.Popen, sig: int) -> None:
        """Sends `sig` to the program `p` runs (for a time-wrapped one: time's child, since
        GNU time would die and orphan it)."""
        if p.poll() is not None:
            return
        pids = child_pids(p.pid) if getattr(p, "bench_wrapped", False) else []
        for pid in pids or [p.pid]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, p: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if p.poll() is None:
            self.send(p, sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in child_pids(p.pid) if getattr(p, "bench_wrapped", False) else []:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                p.kill()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    log(f"pid {p.pid} did not exit after SIGKILL")
        with self.lock:
            if p in self.procs:
                self.procs.remove(p)
        return p.returncode

    def stop_all(self) -> None:
        with self.lock:
            procs = list(reversed(self.procs))
        for p in procs:
            self.stop(p, signal.SIGTERM, 20.0)


def rss_of(path: Path) -> int | None:
    """Peak RSS in KiB from a `/usr/bin/time -v` report."""
    try:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", path.read_text())
    except OSError:
        return None
    return int(m.group(1)) if m else None


def cpu_of(path: Path) -> float | None:
    """User + system CPU seconds from a `/usr/bin/time -v` report."""
    try:
        text = path.read_text()
    except OSError:
        return None
    u = re.search(r"User time \(seconds\): ([\d.]+)", text)
    k = re.search(r"System time \(seconds\): ([\d.]+)", text)
    return float(u.group(1)) + float(k.group(1)) if u and k else None


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timed:
    secs: float
    rc: int
    rss_kb: int | None
    cpu: float | None = None
    # CPU seconds of the servers during the run: {"target": s, "upstream": s}
    servers: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# MariaDB servers and clients
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    tool: str
    secs: float | None = None
    rows_per_s: float | None = None
    mb_per_s: float | None = None
    ratio: str = "—"
    rss_kb: int | None = None
    result: str = "—"
    notes: str = ""
    dmrs: bool = False


@dataclass
class Target:
    what: str
    goal: str
    measured: str = "not measured"
    met: str = "n/a"


def fmt_num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "—"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fmt_rss(kb: int | None) -> str:
    return "—" if kb is None else f"{kb / 1024:.0f} MB"


def table_text(rows: list[Row], markdown: bool) -> str:
    head = ["scenario", "tool", "seconds", "rows/s", "MB/s", "dm-rs ÷ this", "peak RSS", "check", "notes"]
    body = [[r.scenario, r.tool, fmt_num(r.secs, 2), fmt_num(r.rows_per_s), fmt_num(r.mb_per_s, 1),
             r.ratio, fmt_rss(r.rss_kb), r.result, r.notes] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    widths[-1] = len(head[-1])  # notes: not padded
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    for b in body:
        out.append("  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip())
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.reaper = Reaper()
        base = os.environ.get("TMPDIR", "/tmp")
        self.work = Path(tempfile.mkdtemp(prefix="dm-rs-bench.", dir=base))
        self.files = self.work / "files"  # secure_file_priv of every server
        self.files.mkdir()
        self.rows: list[Row] = []
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.targets: list[Target] = []
        self.clients: list[Client] = []
        self.stop_event = threading.Event()
        self.servers: dict[str, Server] = {}
        self.marker = 0
        self.server_ids = iter(range(9101, 9999))
        self.load_before = os.getloadavg()
        self.load_after: tuple[float, float, float] | None = None
        self.uptime_before = uptime()
        self.commit_at_start = git_state()  # what the binaries were just built from
        self.uptime_after = ""
        self.started = time.time()
        profile = "debug" if args.quick and not args.release else "release"
        self.bin = Path(args.bin_dir) if args.bin_dir else REPO / "target" / profile
        self.tools: dict[str, str] = {}
        # State shared between scenarios.
        self.snap_pos: tuple[str, int] | None = None
        self.snap_gtid = ""
        self.synced_pos: dict[str, tuple[str, int]] = {}  # target → upstream position it equals
        self.gen: dict | None = None
        self.capacity_rows_s: float | None = None
        self.dmrs_inc_rows_s: float | None = None
        self.write_limit_rows_s: dict[str, float] = {}
        # oltp_write_only transactions/s the upstream sustained alone (generation).
        self.write_only_tps: float | None = None
        self.up_sums: dict | None = None

    # ---- plumbing ------------------------------------------------------------------

    def deadline(self, secs: float) -> float:
        return time.monotonic() + secs * self.args.timeout_scale

    def check_tools(self, scenarios: list[str]) -> None:
        want = {"mariadbd": "mariadb-server", "mariadb-install-db": "mariadb-server",
                "mariadb": "mariadb-client", "mariadb-dump": "mariadb-client",
                "mariadb-binlog": "mariadb-client", "sysbench": "sysbench"}
        if "full" in scenarios:
            want.update({"mydumper": "mydumper", "myloader": "mydumper"})
        for cmd, pkg in want.items():
            self.tools[cmd] = need(cmd, pkg)
        for cmd in ("mydumper", "myloader"):
            p = which(cmd)
            if p:
                self.tools[cmd] = p
        if not self.reaper.time_bin:
            log("/usr/bin/time missing (Debian `time`): peak RSS will not be reported")
        bins = ["dm-migrate", "dm-syncer", "examples/decode_binlog"]
        for b in bins:
            if not (self.bin / b).exists():
                raise BenchError(f"{self.bin / b} not built: run bench/run.sh (it builds with cargo)")

    def server(self, name: str) -> Server:
        return self.servers[name]

    @property
    def up(self) -> Server:
        return self.servers["upstream"]

    def start_servers(self, names: list[str]) -> None:
        ids = {"upstream": 1, "t-dmrs": 11, "t-mydumper": 12, "t-dump": 13}
        for n in names:
            self.servers[n] = Server(self, n, ids[n], upstream=(n == "upstream"))
        errors: list[Exception] = []

        def start(s: Server) -> None:
            try:
                s.start()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=start, args=(self.servers[n],)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        if errors:
            raise errors[0]

    def cleanup(self) -> None:
        self.stop_event.set()
        for c in self.clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        for s in list(self.servers.values()):
            try:
                s.shutdown()
            except Exception as e:  # noqa: BLE001
                log(f"{s.name}: shutdown: {e}")
        self.reaper.stop_all()
        if self.args.keep:
            log(f"work dir kept: {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def server_cpu(self, target: Server, since: dict[str, float] | None = None) -> dict[str, float]:
        """CPU seconds used so far by `target` and the upstream (minus `since`)."""
        now = {"target": proc_cpu(target.proc.pid) if target.proc else 0.0,
               "upstream": proc_cpu(self.up.proc.pid) if self.up.proc else 0.0}
        if since:
            return {k: now[k] - since.get(k, 0.0) for k in now}
        return now

    def client(self, server: Server, name: str) -> Client:
        c = Client(server, self.work / f"client-{name}.log")
        self.clients.append(c)
        return c

    def close_client(self, c: Client) -> None:
        c.close()
        if c in self.clients:
            self.clients.remove(c)

    def run_timed(self, argv: list[str], name: str, timeout: float, stdout=None,
                  stdin=None) -> Timed:
        """Runs argv to completion under /usr/bin/time; fails loudly after `timeout`."""
        logf = self.work / f"{name}.log"
        rssf = self.work / f"{name}.time"
        with open(logf, "ab") as err:
            t0 = time.monotonic()
            p = self.reaper.spawn(argv, stdin=stdin or subprocess.DEVNULL,
                                  stdout=stdout or err, stderr=err, rss_file=rssf)
            try:
                p.wait(timeout * self.args.timeout_scale)
            except subprocess.TimeoutExpired:
                self.reaper.stop(p, signal.SIGKILL, 30)
                raise BenchError(f"{name}: still running after {timeout:.0f} s; log {logf}:\n{tail(logf)}")
            secs = time.monotonic() - t0
            self.reaper.stop(p)
        return Timed(secs, p.returncode, rss_of(rssf), cpu_of(rssf))

    def sysbench(self, test: str, extra: list[str], cmd: str, timeout: float) -> str:
        argv = [self.tools["sysbench"], test, "--db-driver=mysql", "--mysql-host=127.0.0.1",
                f"--mysql-port={self.up.port}", "--mysql-user=root", f"--mysql-db={DB}",
                f"--tables={self.args.tables}", f"--table-size={self.args.table_size}",
                "--rand-seed=1"] + extra + [cmd]
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=timeout * self.args.timeout_scale)
        except subprocess.TimeoutExpired:
            raise BenchError(f"sysbench {test} {cmd}: still running after {timeout:.0f} s")
        if r.returncode != 0:
            raise BenchError(f"sysbench {test} {cmd} failed:\n{r.stdout[-3000:]}")
        return r.stdout

    def tables(self) -> list[str]:
        return [f"{DB}.sbtest{i}" for i in range(1, self.args.tables + 1)] + [
            f"{DB}.bench_marker", f"{DB}.bench_heartbeat"]

    def checksums(self, server: Server) -> dict[str, tuple[str, str]]:
        """{table: (rows, checksum)} of the benchmark tables."""
        tabs = self.tables()
        rows = server.sql("CHECKSUM TABLE " + ", ".join(tabs), timeout=600)
        sums = {r[0]: r[1] for r in rows}
        counts = server.sql(" UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM {t}" for t in tabs), timeout=600)
        cnt = {r[0]: r[1] for r in counts}
        return {t: (cnt.get(t, "?"), sums.get(t, "NULL")) for t in tabs}

    def upstream_sums(self) -> dict[str, tuple[str, str]]:
        if self.up_sums is None:
            self.up_sums = self.checksums(self.up)
        return self.up_sums

    def compare(self, target: Server) -> str | None:
        """None when every benchmark table of `target` equals the upstream's, else the diff."""
        want = self.upstream_sums()
        got = self.checksums(target)
        diff = [f"{t}: upstream rows={want[t][0]} checksum={want[t][1]}, {target.name} rows={got[t][0]} checksum={got[t][1]}"
                for t in want if want[t] != got.get(t)]
        return "; ".join(diff) if diff else None

    def next_marker(self) -> int:
        self.marker += 1
        return self.marker

    def write_marker(self, note: str) -> int:
        m = self.next_marker()
        self.up.sql(f"INSERT INTO {DB}.bench_marker VALUES ({m}, '{note}')")
        self.up_sums = None
        return m

    def wait_marker(self, poll: Client, marker: int, timeout: float, alive, what: str) -> float:
        """Polls `poll`'s server until marker row `marker` is there; returns the monotonic time
        it was seen. `alive()` raises when the applier has failed."""
        deadline = self.deadline(timeout)
        last_alive = 0.0
        while True:
            rows = poll.query(f"SELECT COUNT(*) FROM {DB}.bench_marker WHERE id = {marker}")
            now = time.monotonic()
            if rows and rows[0][0] == "1":
                return now
            if now - last_alive > 1.0:
                alive()
                last_alive = now
            if now > deadline:
                raise BenchError(f"{what}: not caught up after {timeout * self.args.timeout_scale:.0f} s")
            time.sleep(0.02)

    def wait_equal(self, target: Server, timeout: float) -> tuple[float, str | None, int]:
        """After the marker: checksums until equal or the deadline. Returns the time at the end
        of the last round, the last diff (None: equal) and the number of rounds."""
        deadline = self.deadline(timeout)
        rounds = 0
        while True:
            rounds += 1
            diff = self.compare(target)
            now = time.monotonic()
            if diff is None or now > deadline:
                return now, diff, rounds
            time.sleep(0.2)

    # ---- dm-rs configs ---------------------------------------------------------------

    def syncer_desc(self) -> str:
        a = self.args
        return ", ".join([f"worker-count {a.worker_count}", f"batch {a.batch}"]
                         + [o.replace("=", " ", 1) for o in a.syncer_option])

    def write_task(self, name: str, mode: str, target: Server, pos: tuple[str, int] | None,
                   dump_dir: Path | None = None) -> tuple[Path, Path]:
        d = self.work / name
        extra = "".join(f"    {k.strip()}: {v.strip()}\n" for k, v in (o.split("=", 1) for o in self.args.syncer_option))
        d.mkdir(parents=True, exist_ok=True)
        meta = ""
        if pos:
            meta = f"    meta:\n      binlog-name: \"{pos[0]}\"\n      binlog-pos: {pos[1]}\n"
        task = f"""name: "{name}"
task-mode: {mode}
meta-schema: "dm_meta"
target-database:
  host: "127.0.0.1"
  port: {target.port}
  user: "root"
  password: ""
block-allow-list:
  ba:
    do-dbs: ["{DB}"]
mydumpers:
  d:
    threads: {self.args.threads}
loaders:
  l:
    pool-size: {self.args.threads}
    dir: "{dump_dir or (d / 'dump')}"
syncers:
  s:
    worker-count: {self.args.worker_count}
    batch: {self.args.batch}
    safe-mode-duration: "0s"
{extra}mysql-instances:
  - source-id: "bench-up"
    block-allow-list: "ba"
    mydumper-config-name: "d"
    loader-config-name: "l"
    syncer-config-name: "s"
{meta}"""
        source = f"""source-id: "bench-up"
flavor: "mariadb"
enable-gtid: false
server-id: {next(self.server_ids)}
from:
  host: "127.0.0.1"
  port: {self.up.port}
  user: "root"
  password: ""
"""
        (d / "task.yaml").write_text(task)
        (d / "source.yaml").write_text(source)
        return d / "task.yaml", d / "source.yaml"

    # ---- set-up ------------------------------------------------------------------------

    def prepare(self) -> None:
        a = self.args
        log(f"sysbench prepare: {a.tables} tables × {a.table_size} rows")
        self.up.sql(f"CREATE DATABASE {DB}")
        t0 = time.monotonic()
        self.sysbench("oltp_read_write", [f"--threads={min(a.tables, a.sysbench_threads)}"], "prepare",
                      300 + a.tables * a.table_size / 500)
        self.notes.append(f"sysbench prepare of {a.tables}×{a.table_size} rows took {time.monotonic() - t0:.1f} s")
        self.up.sql(
            f"CREATE TABLE {DB}.bench_marker (id INT PRIMARY KEY, note VARCHAR(32) NOT NULL);"
            f"CREATE TABLE {DB}.bench_heartbeat (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL);"
            f"INSERT INTO {DB}.bench_heartbeat VALUES (1, NOW(6));"
            "FLUSH BINARY LOGS")
        self.snap_pos = self.up.master_status()
        self.snap_gtid = self.up.one("SELECT @@GLOBAL.gtid_binlog_pos")
        self.up_sums = None
        log(f"snapshot position {self.snap_pos[0]}:{self.snap_pos[1]}")

    def ensure_snapshot(self, names: list[str]) -> None:
        """Loads the prepared tables into targets that do not have them yet (when the full
        scenario, which does that, was not run), with mydumper/myloader when present."""
        missing = [n for n in names if n not in self.synced_pos]
        if not missing:
            return
        log(f"loading the snapshot into {', '.join(missing)}")
        for n in missing:
            self.server(n).sql(f"DROP DATABASE IF EXISTS {DB}")
        snap = self.work / "snapshot"
        dump = self.tools.get("mydumper")
        if dump and self.tools.get("myloader"):
            r = self.run_timed([dump, "-h", "127.0.0.1", "-P", str(self.up.port), "-u", "root", "-B", DB,
                                "--threads", str(self.args.threads), "-o", str(snap)], "snapshot-dump", 1800)
            if r.rc != 0:
                raise BenchError(f"mydumper failed (rc {r.rc}): {tail(self.work / 'snapshot-dump.log')}")
            for n in missing:
                t = self.server(n)
                r = self.run_timed([self.tools["myloader"], "-d", str(snap), "-t", str(self.args.threads),
                                    "-h", "127.0.0.1", "-P", str(t.port), "-u", "root"], f"snapshot-load-{n}", 1800)
                if r.rc != 0:
                    raise BenchError(f"myloader into {n} failed: {tail(self.work / f'snapshot-load-{n}.log')}")
        else:
            snapf = self.work / "snapshot.sql"
            with open(snapf, "wb") as out:
                r = self.run_timed([self.tools["mariadb-dump"], "--no-defaults", "-h127.0.0.1", f"-P{self.up.port}",
                                    "-uroot", "--single-transaction", "--databases", DB], "snapshot-dump", 1800, stdout=out)
            if r.rc != 0:
                raise BenchError("mariadb-dump of the snapshot failed")
            for n in missing:
                with open(snapf, "rb") as inp:
                    r = self.run_timed(self.server(n).client_argv(), f"snapshot-load-{n}", 1800, stdin=inp)
                if r.rc != 0:
                    raise BenchError(f"loading the snapshot into {n} failed")
        shutil.rmtree(snap, ignore_errors=True)
        for n in missing:
            diff = self.compare(self.server(n))
            if diff:
                raise BenchError(f"snapshot in {n} differs: {diff}")
            self.synced_pos[n] = self.snap_pos  # type: ignore[assignment]

    # ---- scenario 1: full ----------------------------------------------------------------

    def quiesce(self, timeout: float = 120.0) -> float:
        """Has every server write back its dirty pages before a timed run, so that a run does
        not pay for the background flushing of the previous tool's load (on 2 cores that
        shifted single runs by a second or more); returns the seconds it took."""
        t0 = time.monotonic()
        servers = list(self.servers.values())
        names = ["innodb_max_dirty_pages_pct", "innodb_io_capacity", "innodb_io_capacity_max"]
        saved = {s.name: s.sql("SELECT " + ", ".join(f"@@GLOBAL.{n}" for n in names))[0] for s in servers}
        deadline = self.deadline(timeout)
        try:
            for s in servers:
                # The page cleaner writes about io_capacity pages a second (200 by default).
                s.sql("SET GLOBAL innodb_io_capacity_max = 100000; SET GLOBAL innodb_io_capacity = 100000; "
                      "SET GLOBAL innodb_max_dirty_pages_pct = 0")
            for s in servers:
                while int(s.one("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                "WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'")) > 100:
                    if time.monotonic() > deadline:
                        raise BenchError(f"{s.name}: dirty pages not written back within {timeout:.0f} s")
                    time.sleep(0.1)
        finally:
            for s in servers:
                pct, cap, cap_max = saved[s.name]
                s.sql(f"SET GLOBAL innodb_max_dirty_pages_pct = {pct}; SET GLOBAL innodb_io_capacity = {cap}; "
                      f"SET GLOBAL innodb_io_capacity_max = {cap_max}")
        return time.monotonic() - t0

    def scenario_full(self) -> None:
        a = self.args
        rows_total = a.tables * a.table_size
        up = self.up
        data_bytes: int | None = None
        results: dict[str, list[tuple[Timed, str, str | None]]] = {"dm-rs": [], "mydumper": [], "mariadb-dump": []}

        def drop(t: Server) -> None:
            t.sql(f"DROP DATABASE IF EXISTS {DB}; DROP DATABASE IF EXISTS dm_meta")
            self.quiesce()

        def run_dmrs(r: int) -> tuple[Timed, str]:
            t = self.server("t-dmrs")
            drop(t)
            name = f"bench_full_{r}"
            dump_dir = self.work / f"dmrs-dump-{r}"
            task, source = self.write_task(name, "full", t, None, dump_dir)
            logf = self.work / name / "dm-migrate.log"
            res = self.run_timed([str(self.bin / "dm-migrate"), "--task", str(task), "--source", str(source),
                                  "--log-file", str(logf), "--status-interval", "0"], f"{name}-run",
                                 300 + rows_total / 200)
            if res.rc != 0:
                raise BenchError(f"dm-migrate full exited with {res.rc}: {tail(self.work / f'{name}-run.log')}\n{tail(logf)}")
            text = logf.read_text(errors="replace")
            parts = []
            d = kv_line(text, "dump finished")
            lo = kv_line(text, "load finished")
            if d.get("secs"):
                parts.append(f"dump {float(d['secs']):.1f}s")
            if lo.get("seconds"):
                parts.append(f"load {float(lo['seconds'].strip(chr(34))):.1f}s")
            for p in self.work.glob(f"dmrs-dump-{r}*"):
                shutil.rmtree(p, ignore_errors=True)
            return res, " + ".join(parts)

        def run_mydumper(r: int) -> tuple[Timed, str]:
            nonlocal data_bytes
            t = self.server("t-mydumper")
            drop(t)
            out = self.work / f"mydumper-{r}"
            d = self.run_timed([self.tools["mydumper"], "-h", "127.0.0.1", "-P", str(up.port), "-u", "root",
                                "-B", DB, "--threads", str(a.threads), "-o", str(out)], f"mydumper-{r}",
                               300 + rows_total / 200)
            if d.rc != 0:
                raise BenchError(f"mydumper exited with {d.rc}: {tail(self.work / f'mydumper-{r}.log')}")
            if data_bytes is None:
                data_bytes = sum(f.stat().st_size for f in out.glob(f"{DB}.*.sql")
                                 if not f.name.endswith("-schema.sql"))
            lo = self.run_timed([self.tools["myloader"], "-d", str(out), "-t", str(a.threads), "-h", "127.0.0.1",
                                 "-P", str(t.port), "-u", "root"], f"myloader-{r}", 300 + rows_total / 200)
            if lo.rc != 0:
                raise BenchError(f"myloader exited with {lo.rc}: {tail(self.work / f'myloader-{r}.log')}")
            shutil.rmtree(out, ignore_errors=True)
            rss = max(x for x in (d.rss_kb, lo.rss_kb, 0) if x is not None) or None
            cpu = (d.cpu or 0) + (lo.cpu or 0)
            return Timed(d.secs + lo.secs, 0, rss, cpu), f"dump {d.secs:.1f}s + load {lo.secs:.1f}s"

        def run_dump(r: int) -> tuple[Timed, str]:
            t = self.server("t-dump")
            drop(t)
            name = f"mariadb-dump-{r}"
            logf = self.work / f"{name}.log"
            rss1, rss2 = self.work / f"{name}.dump.time", self.work / f"{name}.load.time"
            with open(logf, "ab") as err:
                t0 = time.monotonic()
                p1 = self.reaper.spawn([self.tools["mariadb-dump"], "--no-defaults", "-h127.0.0.1", f"-P{up.port}",
                                        "-uroot", "--default-character-set=utf8mb4", "--single-transaction",
                                        "--databases", DB], stdout=subprocess.PIPE, stderr=err, rss_file=rss1)
                p2 = self.reaper.spawn(t.client_argv(), stdin=p1.stdout, stderr=err, rss_file=rss2)
                assert p1.stdout is not None
                p1.stdout.close()
                deadline = self.deadline(300 + rows_total / 100)
                for p in (p1, p2):
                    try:
                        p.wait(max(1.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        self.reaper.stop(p1, signal.SIGKILL)
                        self.reaper.stop(p2, signal.SIGKILL)
                        raise BenchError(f"mariadb-dump | mariadb still running at the deadline:\n{tail(logf)}")
                secs = time.monotonic() - t0
                self.reaper.stop(p1)
                self.reaper.stop(p2)
            if p1.returncode or p2.returncode:
                raise BenchError(f"mariadb-dump | mariadb failed ({p1.returncode}, {p2.returncode}):\n{tail(logf)}")
            rss = max([x for x in (rss_of(rss1), rss_of(rss2)) if x is not None], default=None)
            return Timed(secs, 0, rss, (cpu_of(rss1) or 0) + (cpu_of(rss2) or 0)), "one stream"

        runners = {"dm-rs": run_dmrs, "mydumper": run_mydumper, "mariadb-dump": run_dump}
        order = ["dm-rs", "mydumper", "mariadb-dump"]
        targets = {"dm-rs": "t-dmrs", "mydumper": "t-mydumper", "mariadb-dump": "t-dump"}
        for r in range(1, a.repeat + 1):
            for tool in (order if r % 2 else list(reversed(order))):
                log(f"full: {tool} (round {r}/{a.repeat}, {rows_total} rows, {a.threads} threads)")
                t = self.server(targets[tool])
                try:
                    c0 = self.server_cpu(t)
                    res, note = runners[tool](r)
                    res.servers = self.server_cpu(t, c0)
                    diff = self.compare(t)
                except BenchError as e:
                    self.fail(f"full/{tool}", str(e))
                    results[tool].append((Timed(0, 1, None), "", str(e)))
                    continue
                results[tool].append((res, note, diff))
                if diff:
                    self.fail(f"full/{tool}", f"target differs: {diff}")
                else:
                    self.synced_pos[targets[tool]] = self.snap_pos  # type: ignore[assignment]
                log(f"full: {tool} {res.secs:.1f} s ({'PASS' if not diff else 'FAIL'}) {note}")

        labels = {"dm-rs": f"dm-rs dm-migrate full ({a.threads} thr)",
                  "mydumper": f"mydumper | myloader ({a.threads} thr)",
                  "mariadb-dump": "mariadb-dump | mariadb"}
        best: dict[str, float] = {}
        rows_out: list[Row] = []
        for tool in order:
            runs = results[tool]
            ok = [x for x in runs if x[2] is None]
            if not ok or len(ok) != len(runs):
                rows_out.append(Row("full", labels[tool], result="FAIL", dmrs=(tool == "dm-rs"),
                                    notes=(runs[-1][2] or "")[:160] if runs else "not run"))
                continue
            secs = statistics.median(x[0].secs for x in ok)
            rss = max((x[0].rss_kb for x in ok if x[0].rss_kb), default=None)
            best[tool] = secs
            # The split and the CPU seconds of the median run (the upper middle one for an even count).
            mid = sorted(ok, key=lambda x: x[0].secs)[len(ok) // 2]
            note = mid[1] if len(ok) == 1 else (f"median of {len(ok)} ({', '.join(f'{x[0].secs:.1f}' for x in ok)} s); "
                                                f"median run: {mid[1]}")
            note += "; " + cpu_note([mid[0]], "dm-migrate" if tool == "dm-rs" else "tools", rows_total)
            rows_out.append(Row("full", labels[tool], secs, rows_total / secs,
                                (data_bytes / 1e6 / secs) if data_bytes else None, "1.00" if tool == "dm-rs" else "—",
                                rss, "PASS", note, dmrs=(tool == "dm-rs")))
        if "dm-rs" in best:
            for r in rows_out:
                for tool, label in labels.items():
                    if r.tool == label and tool != "dm-rs" and tool in best:
                        r.ratio = f"{best[tool] / best['dm-rs']:.2f}"
        self.rows += rows_out
        if data_bytes:
            self.notes.append(f"full: MB/s = bytes of mydumper's data files ({data_bytes / 1e6:.1f} MB, the same "
                              "numerator for every tool) / seconds; seconds = dump + load, wall clock; before "
                              "each run the target's database is dropped and every server writes back its dirty "
                              "pages (innodb_max_dirty_pages_pct = 0 and innodb_io_capacity 100000 until ≤ 100 are left, then "
                              "restored)")
        goal = Target("full", "dm-rs time ≤ 0.67 × mydumper+myloader (equal threads)")
        if "dm-rs" in best and "mydumper" in best:
            f = best["dm-rs"] / best["mydumper"]
            goal.measured = f"{best['dm-rs']:.1f} s vs {best['mydumper']:.1f} s = {f:.2f}×"
            goal.met = "met" if f <= 0.67 else "missed"
        self.targets.append(goal)

    # ---- workload generation (for incremental, decode, write-limit) -----------------------

    def generate(self) -> None:
        a = self.args
        assert self.snap_pos is not None
        # (Only the GTID state says whether data changed: a BINLOG_CHECKPOINT event may follow
        # the snapshot's FLUSH BINARY LOGS.)
        cur = self.up.one("SELECT @@GLOBAL.gtid_binlog_pos")
        if cur != self.snap_gtid:
            raise BenchError(f"upstream changed since the snapshot (GTID {self.snap_gtid} → {cur})")
        trx = 0
        ignored = 0  # transactions sysbench rolled back (deadlocks): counted by Handler_*, not binlogged
        stats = []
        before = self.handler_rows()
        t0 = time.monotonic()
        for test, events in (("oltp_insert", a.events_insert), ("oltp_write_only", a.events_write_only),
                             ("oltp_update_index", a.events_update_index)):
            if events <= 0:
                continue
            log(f"generating: sysbench {test} --events={events}")
            out = self.sysbench(test, [f"--threads={a.sysbench_threads}", f"--events={events}", "--time=0",
                                       "--report-interval=0"], "run", 300 + events / 50)
            m = re.search(r"transactions:\s+(\d+)\s+\(([\d.]+) per sec", out)
            if m:
                trx += int(m.group(1))
                stats.append(f"{test} {m.group(1)} trx at {float(m.group(2)):.0f}/s")
                if test == "oltp_write_only":
                    self.write_only_tps = float(m.group(2))
            m = re.search(r"ignored errors:\s+(\d+)", out)
            ignored += int(m.group(1)) if m else 0
        marker = self.write_marker("generated")
        after = self.handler_rows()
        self.up.sql("FLUSH BINARY LOGS")
        end = self.up.master_status()
        logs = [r[0] for r in self.up.sql("SHOW BINARY LOGS")]
        files = [self.up.datadir / n for n in logs if self.snap_pos[0] <= n < end[0]]
        size = sum(f.stat().st_size for f in files)
        self.up_sums = None
        gen_secs = time.monotonic() - t0
        count = self.decode_count(files)
        # The upstream's own count of row operations is the independent oracle for the
        # decoder's count (per kind).
        server = {k: after[k] - before[k] for k in after}
        mine = {"inserted": count["inserts"], "updated": count["updates"], "deleted": count["deletes"]}
        # Exact unless sysbench rolled transactions back (each oltp_write_only one had at most
        # 2 updates, 1 delete and 1 insert counted but not committed).
        slack = {"inserted": ignored, "updated": 2 * ignored, "deleted": ignored}
        count_ok = all(0 <= server[k] - mine[k] <= slack[k] for k in mine)
        self.gen = {"files": files, "bytes": size, "rows": count["rows"], "count": count, "marker": marker,
                    "end": end, "trx": trx + 1, "secs": gen_secs, "server_rows": server,
                    "count_ok": count_ok}
        agree = ("equal to" if server == mine else "within the rolled-back transactions of" if count_ok
                 else "DIFFERENT from")
        if not count_ok:
            self.fail("row count", f"decode_binlog counted {mine}, the upstream's Handler_* counters {server} "
                                   f"({ignored} transactions rolled back)")
        self.notes.append(f"generated binlog: {len(files)} file(s), {size / 1e6:.1f} MB, {count['rows']} row changes "
                          f"(insert {count['inserts']}, update {count['updates']}, delete {count['deletes']}; "
                          f"counted by decode_binlog: {agree} the upstream's Handler_write/update/delete deltas), "
                          f"{trx} sysbench transactions ({ignored} deadlocks, rolled back and retried by sysbench) "
                          f"({'; '.join(stats)}) in {gen_secs:.0f} s")
        log(f"generated {count['rows']} row changes in {len(files)} binlog file(s), {size / 1e6:.1f} MB")

    def handler_rows(self) -> dict[str, int]:
        """The upstream's Handler_write/update/delete: rows written, changed and deleted in
        real (not internal temporary) tables; an UPDATE that changes nothing is not counted,
        just as it writes no binlog row."""
        names = {"handler_write": "inserted", "handler_update": "updated", "handler_delete": "deleted"}
        rows = self.up.sql("SHOW GLOBAL STATUS WHERE Variable_name IN "
                           "('Handler_write', 'Handler_update', 'Handler_delete')")
        got = {names[r[0].lower()]: int(r[1]) for r in rows if r[0].lower() in names}
        if len(got) != 3:
            raise BenchError(f"upstream: Handler_* counters missing: {rows}")
        return got

    def decode_count(self, files: list[Path]) -> dict:
        r = subprocess.run([str(self.bin / "examples/decode_binlog"), "--json", "--host", "127.0.0.1", "--port",
                            str(self.up.port), *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=1800 * self.args.timeout_scale)
        if r.returncode != 0:
            raise BenchError(f"decode_binlog failed: {r.stderr.strip()[-2000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    # ---- scenario 2: incremental catch-up -------------------------------------------------

    def start_syncer(self, name: str, target: Server, pos: tuple[str, int]) -> tuple[subprocess.Popen, Path, Path]:
        task, source = self.write_task(name, "incremental", target, pos)
        logf = self.work / name / "dm-syncer.log"
        rssf = self.work / name / "dm-syncer.time"
        err = open(self.work / name / "stderr.log", "ab")  # noqa: SIM115 - the child owns a copy
        p = self.reaper.spawn([str(self.bin / "dm-syncer"), "--task", str(task), "--source", str(source),
                               "--log-file", str(logf), "--status-interval", "1"], stderr=err, rss_file=rssf)
        err.close()
        return p, logf, rssf

    def syncer_alive(self, p: subprocess.Popen, logf: Path):
        def check() -> None:
            if p.poll() is not None:
                raise BenchError(f"dm-syncer exited with {p.returncode}:\n{tail(logf)}\n{tail(logf.parent / 'stderr.log')}")
        return check

    def scenario_incremental(self) -> None:
        assert self.gen is not None and self.snap_pos is not None
        g = self.gen
        rows, size = g["rows"], g["bytes"]
        timeout = 300 + rows / 100
        out: list[Row] = []

        # dm-rs
        t = self.server("t-dmrs")
        log(f"incremental: dm-syncer applying {rows} row changes into {t.name}")
        poll = self.client(t, "inc-dmrs")
        row = Row("incremental", f"dm-rs dm-syncer ({self.syncer_desc()})", dmrs=True)
        try:
            c0 = self.server_cpu(t)
            p, logf, rssf = self.start_syncer("bench_inc", t, self.snap_pos)
            t0 = time.monotonic()
            seen = self.wait_marker(poll, g["marker"], timeout, self.syncer_alive(p, logf), "dm-syncer")
            cpu = Timed(0, 0, None, sum(proc_cpu(c) for c in child_pids(p.pid)), self.server_cpu(t, c0))
            done, diff, rounds = self.wait_equal(t, max(120.0, timeout))
            secs = seen - t0
            extra = f"equal at the first checksum after the marker ({done - seen:.1f} s); "
            if diff is None and rounds > 1:
                # Other workers were still committing when the marker arrived.
                secs = done - t0
                extra = f"done = end of checksum round {rounds} after the marker; "
            self.reaper.stop(p, signal.SIGTERM, 120)
            status = last_status(logf)
            row.secs, row.rows_per_s, row.mb_per_s = secs, rows / secs, size / 1e6 / secs
            row.rss_kb = rss_of(rssf)
            row.ratio = "1.00"
            row.notes = extra + (f"syncer total_rows={status.get('total_rows')}; " if status else "") + \
                cpu_note([cpu], "dm-syncer", rows)
            if diff:
                row.result = "FAIL"
                self.fail("incremental/dm-rs", f"target differs: {diff}")
            else:
                row.result = "PASS"
                self.synced_pos["t-dmrs"] = g["end"]
                self.dmrs_inc_rows_s = rows / secs
                self.capacity_rows_s = rows / secs
            log(f"incremental: dm-rs {secs:.1f} s, {rows / secs:,.0f} rows/s ({row.result})")
        except BenchError as e:
            row.result, row.notes = "FAIL", str(e)[:160]
            self.fail("incremental/dm-rs", str(e))
        finally:
            self.close_client(poll)
        out.append(row)

        # MariaDB replicas
        for name, threads, mode, label in (("t-mydumper", 0, "conservative", "MariaDB replica, serial"),
                                           ("t-dump", 4, "optimistic", "MariaDB replica, 4 threads optimistic")):
            t = self.server(name)
            log(f"incremental: {label} applying {rows} row changes into {t.name}")
            row = Row("incremental", label)
            poll = self.client(t, f"inc-{name}")
            try:
                t.sql("STOP SLAVE; RESET SLAVE ALL;"
                      f"SET GLOBAL slave_parallel_threads = {threads};"
                      f"SET GLOBAL slave_parallel_mode = '{mode}';"
                      f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.up.port}, MASTER_USER='root', "
                      f"MASTER_PASSWORD='', MASTER_LOG_FILE='{self.snap_pos[0]}', MASTER_LOG_POS={self.snap_pos[1]}, "
                      "MASTER_USE_GTID=no")
                c0 = self.server_cpu(t)
                t0 = time.monotonic()
                t.sql("START SLAVE")

                def alive(t: Server = t) -> None:
                    st = dict((k, v) for k, v in t.sql("SHOW SLAVE STATUS", vertical=True))
                    for k in ("Last_SQL_Errno", "Last_IO_Errno"):
                        if st.get(k, "0") not in ("0", ""):
                            raise BenchError(f"replica {t.name} stopped: {st.get(k.replace('Errno', 'Error'))}")

                seen = self.wait_marker(poll, g["marker"], timeout, alive, label)
                secs = seen - t0
                row.notes = cpu_note([Timed(0, 0, None, None, self.server_cpu(t, c0))], "", rows)
                done, diff, rounds = self.wait_equal(t, max(120.0, timeout))
                if diff is None and rounds > 1:
                    secs = done - t0
                t.sql("STOP SLAVE; RESET SLAVE ALL")
                row.secs, row.rows_per_s, row.mb_per_s = secs, rows / secs, size / 1e6 / secs
                if diff:
                    row.result = "FAIL"
                    self.fail(f"incremental/{label}", f"target differs: {diff}")
                else:
                    row.result = "PASS"
                    self.synced_pos[name] = g["end"]
                    if self.dmrs_inc_rows_s:
                        row.ratio = f"{self.dmrs_inc_rows_s / row.rows_per_s:.2f}"
                log(f"incremental: {label} {secs:.1f} s, {rows / secs:,.0f} rows/s ({row.result})")
            except BenchError as e:
                row.result, row.notes = "FAIL", str(e)[:160]
                self.fail(f"incremental/{label}", str(e))
                try:
                    t.sql("STOP SLAVE; RESET SLAVE ALL", timeout=60)
                except BenchError:
                    pass
            finally:
                self.close_client(poll)
            out.append(row)
        self.rows += out
        self.notes.append("incremental: rows/s = row changes in the generated binlog (decoded) / seconds from the "
                          "applier's start (dm-syncer launch, START SLAVE) until the last upstream transaction (a "
                          "marker row) is visible on the target and CHECKSUM TABLE equals the upstream's; MB/s = "
                          "binlog bytes / seconds")
        serial = next((r for r in out if r.tool == "MariaDB replica, serial" and r.result == "PASS"), None)
        goal = Target("incremental vs replica", "dm-rs rows/s ≥ 2 × serial replica")
        if self.dmrs_inc_rows_s and serial and serial.rows_per_s:
            f = self.dmrs_inc_rows_s / serial.rows_per_s
            goal.measured = f"{self.dmrs_inc_rows_s:,.0f} vs {serial.rows_per_s:,.0f} rows/s = {f:.2f}×"
            goal.met = "met" if f >= 2 else "missed"
        self.targets.append(goal)

    # ---- scenario 3: write limit ------------------------------------------------------------

    def scenario_write_limit(self) -> None:
        a = self.args
        t = self.server("t-dmrs")
        n_total = self.gen["rows"] if self.gen else a.tables * 100
        have = [int(self.up.one(f"SELECT COUNT(*) FROM {DB}.sbtest{i}")) for i in range(1, a.tables + 1)]
        per = [n_total // a.tables + (1 if i < n_total % a.tables else 0) for i in range(a.tables)]
        per = [min(n, h) for n, h in zip(per, have)]
        if sum(per) < n_total:
            self.notes.append(f"write limit: only {sum(per)} of {n_total} rows exist upstream; measured with those")
        n = sum(per)
        log(f"write limit: {n} rows as multi-row INSERT files and as LOAD DATA into empty tables on {t.name}")
        wl = "bench_wl"
        expect = {}
        insert_files, csv_files = [], []
        for i, k in enumerate(per, 1):
            if k == 0:
                continue
            tab = f"sbtest{i}"
            sub = f"(SELECT * FROM {DB}.{tab} ORDER BY id LIMIT {k}) x"
            expect[tab] = tuple(self.up.sql(
                f"SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad))) FROM {sub}")[0])
            csv = self.files / f"wl-{tab}.tsv"
            self.up.sql(f"SELECT * INTO OUTFILE '{csv}' FROM {DB}.{tab} ORDER BY id LIMIT {k}")
            csv_files.append((tab, csv))
            ins = self.files / f"wl-{tab}.sql"
            with open(ins, "wb") as out:
                r = subprocess.run([self.tools["mariadb-dump"], "--no-defaults", "-h127.0.0.1", f"-P{self.up.port}",
                                    "-uroot", "--default-character-set=utf8mb4", "--compact", "--no-create-info",
                                    "--skip-triggers", "--net-buffer-length=1048576",
                                    f"--where=1 ORDER BY id LIMIT {k}", DB, tab],
                                   stdout=out, stderr=subprocess.PIPE, timeout=1800)
            if r.returncode != 0:
                raise BenchError(f"mariadb-dump of {tab}: {r.stderr.decode(errors='replace')}")
            insert_files.append((tab, ins))
        creates = []
        for i, k in enumerate(per, 1):
            if k:
                creates.append(self.up.sql(f"SHOW CREATE TABLE {DB}.sbtest{i}")[0][1].replace("\\n", "\n"))

        def reset() -> None:
            t.sql(f"DROP DATABASE IF EXISTS {wl}; CREATE DATABASE {wl}")
            t.sql(f"USE {wl}; " + "; ".join(creates))

        def verify() -> str | None:
            bad = []
            for tab, want in expect.items():
                got = tuple(t.sql(f"SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad))) FROM {wl}.{tab}")[0])
                if got != want:
                    bad.append(f"{tab}: want rows/crc {want}, got {got}")
            return "; ".join(bad) or None

        def parallel(jobs: list[list[str]], inputs: list[Path | None], label: str) -> float:
            """Runs the clients `threads` at a time; wall seconds of the whole set."""
            width = max(1, min(a.threads, len(jobs)))
            pending = list(zip(jobs, inputs))
            running: list[tuple[subprocess.Popen, object]] = []
            logf = open(self.work / f"{label}.log", "ab")  # noqa: SIM115
            deadline = self.deadline(600 + n / 200)
            t0 = time.monotonic()
            try:
                while pending or running:
                    while pending and len(running) < width:
                        argv, inp = pending.pop(0)
                        fh = open(inp, "rb") if inp else subprocess.DEVNULL  # noqa: SIM115
                        running.append((self.reaper.spawn(argv, stdin=fh, stderr=logf), fh))
                    for p, fh in list(running):
                        if p.poll() is not None:
                            running.remove((p, fh))
                            if fh is not subprocess.DEVNULL:
                                fh.close()  # type: ignore[union-attr]
                            self.reaper.stop(p)
                            if p.returncode:
                                raise BenchError(f"{label}: a client failed:\n{tail(self.work / f'{label}.log')}")
                    if time.monotonic() > deadline:
                        raise BenchError(f"{label}: still running at the deadline")
                    time.sleep(0.005)
                return time.monotonic() - t0
            finally:
                for p, _ in running:
                    self.reaper.stop(p, signal.SIGKILL)
                logf.close()

        methods = [
            ("multi-row INSERT files", [t.client_argv(wl) for _ in insert_files], [f for _, f in insert_files],
             sum(f.stat().st_size for _, f in insert_files)),
            ("LOAD DATA INFILE", [t.client_argv("-e", f"LOAD DATA INFILE '{f}' INTO TABLE {wl}.{tab}")
                                  for tab, f in csv_files], [None] * len(csv_files),
             sum(f.stat().st_size for _, f in csv_files)),
        ]
        for label, jobs, inputs, nbytes in methods:
            row = Row("write limit", f"{label} ({min(a.threads, len(jobs))} clients)")
            try:
                reset()
                secs = parallel(jobs, inputs, f"wl-{label.split()[0].lower()}")
                diff = verify()
                row.secs, row.rows_per_s, row.mb_per_s = secs, n / secs, nbytes / 1e6 / secs
                row.result = "FAIL" if diff else "PASS"
                if diff:
                    self.fail(f"write limit/{label}", diff)
                else:
                    self.write_limit_rows_s[label] = n / secs
                    if self.dmrs_inc_rows_s:
                        row.ratio = f"{self.dmrs_inc_rows_s / row.rows_per_s:.2f}"
                log(f"write limit: {label} {secs:.1f} s, {n / secs:,.0f} rows/s ({row.result})")
            except BenchError as e:
                row.result, row.notes = "FAIL", str(e)[:160]
                self.fail(f"write limit/{label}", str(e))
            self.rows.append(row)
        t.sql(f"DROP DATABASE IF EXISTS {wl}")
        for _, f in insert_files + csv_files:
            f.unlink(missing_ok=True)
        self.notes.append(f"write limit: {n} rows (= the incremental row changes) of the final upstream tables, "
                          "inserted into empty tables of the same schema on the dm-rs target; INSERT files are "
                          "`mariadb-dump --compact --net-buffer-length=1M` (≈1 MB statements, autocommit), "
                          "LOAD DATA reads `SELECT ... INTO OUTFILE` files; one client per table, at most --threads "
                          "at a time; MB/s = input file bytes / seconds; ratio = dm-rs incremental rows/s ÷ this")
        goal = Target("incremental vs write limit", "dm-rs incremental rows/s ≥ 0.8 × write limit (the faster method)")
        if self.dmrs_inc_rows_s and self.write_limit_rows_s:
            best_label, best = max(self.write_limit_rows_s.items(), key=lambda kv: kv[1])
            f = self.dmrs_inc_rows_s / best
            goal.measured = f"{self.dmrs_inc_rows_s:,.0f} vs {best:,.0f} rows/s ({best_label}) = {f:.2f}"
            goal.met = "met" if f >= 0.8 else "missed"
        self.targets.append(goal)

    # ---- scenario 5: decode -------------------------------------------------------------------

    def scenario_decode(self) -> None:
        assert self.gen is not None
        files = [str(f) for f in self.gen["files"]]
        size = self.gen["bytes"]
        rows = self.gen["rows"]
        for f in files:  # warm the page cache for both tools
            with open(f, "rb") as fh:
                while fh.read(1 << 20):
                    pass
        # Correctness: decode_binlog's count per kind equals the upstream's InnoDB counters
        # (checked in generate()), every run counts the same, and (on small binlogs, where it
        # is cheap, or with --binlog-count) mariadb-binlog counts the same rows.
        theirs = None
        if self.args.quick or self.args.binlog_count or size < 64e6:
            cnt = subprocess.run(
                f"{shlex.quote(self.tools['mariadb-binlog'])} --base64-output=decode-rows -v "
                + " ".join(map(shlex.quote, files))
                + " | grep -cE '^### (INSERT INTO|UPDATE|DELETE FROM) '",
                shell=True, stdout=subprocess.PIPE, text=True, timeout=1800 * self.args.timeout_scale)
            theirs = int(cnt.stdout.strip() or 0)
        ours_argv = [str(self.bin / "examples/decode_binlog"), "--json", "--host", "127.0.0.1", "--port",
                     str(self.up.port), *files]
        theirs_argv = [self.tools["mariadb-binlog"], "--base64-output=decode-rows", "-v", *files]
        runs: dict[str, list[Timed]] = {"ours": [], "theirs": []}
        internal = []
        for r in range(self.args.decode_repeat):
            order = ["ours", "theirs"] if r % 2 == 0 else ["theirs", "ours"]
            for who in order:
                outf = self.work / f"decode-{who}-{r}.out"
                with open(outf, "wb") if who == "ours" else open(os.devnull, "wb") as out:
                    res = self.run_timed(ours_argv if who == "ours" else theirs_argv, f"decode-{who}-{r}",
                                         600 + size / 1e6, stdout=out)
                if res.rc != 0:
                    raise BenchError(f"decode ({who}) exited with {res.rc}: {tail(self.work / f'decode-{who}-{r}.log')}")
                runs[who].append(res)
                if who == "ours":
                    internal.append(json.loads(outf.read_text().strip().splitlines()[-1]))
        ours = statistics.median(x.secs for x in runs["ours"])
        theirs_s = statistics.median(x.secs for x in runs["theirs"])
        ok = self.gen["count_ok"] and (theirs is None or theirs == rows) and all(i["rows"] == rows for i in internal)
        inner = statistics.median(i["rows_per_sec"] for i in internal)
        r1 = Row("decode", "dm-rs decode_binlog (1 thread)", ours, rows / ours, size / 1e6 / ours, "1.00",
                 max((x.rss_kb or 0) for x in runs["ours"]) or None, "PASS" if ok else "FAIL",
                 f"decode loop alone {inner:,.0f} rows/s; median of {len(runs['ours'])}", dmrs=True)
        r2 = Row("decode", "mariadb-binlog -v --base64-output=decode-rows", theirs_s, rows / theirs_s,
                 size / 1e6 / theirs_s, f"{theirs_s / ours:.2f}", max((x.rss_kb or 0) for x in runs["theirs"]) or None,
                 "PASS" if ok else "FAIL",
                 (f"counted {theirs} rows; " if theirs is not None else "") + f"median of {len(runs['theirs'])}")
        if not ok:
            self.fail("decode", f"row counts differ: decode_binlog {[i['rows'] for i in internal]}, "
                                f"mariadb-binlog {theirs}, generated {rows}")
        self.rows += [r1, r2]
        self.notes.append("decode: seconds = wall clock of the whole process on page-cached files (ours includes "
                          "reading information_schema once); 'decode loop alone' is the example's own timing; "
                          "correctness = decode_binlog's inserts/updates/deletes equal the upstream's "
                          "Handler_write/update/delete deltas over the generation (and mariadb-binlog's count when it was "
                          "taken: --quick, binlogs < 64 MB, or --binlog-count)")
        goal = Target("decode", "≥ 2M rows/s per core on sysbench rows, and faster than mariadb-binlog")
        goal.measured = (f"{rows / ours:,.0f} rows/s wall ({inner:,.0f} in the loop) on 1 thread; "
                         f"mariadb-binlog {rows / theirs_s:,.0f} rows/s")
        goal.met = "met" if inner >= 2e6 and ours < theirs_s else "missed"
        self.targets.append(goal)

    # ---- scenario 4: steady-state lag -------------------------------------------------------

    def scenario_lag(self) -> None:
        a = self.args
        t = self.server("t-dmrs")
        start = self.synced_pos.get("t-dmrs")
        if not start:
            raise BenchError("the dm-rs target has no known synced position")
        if a.lag_rate:
            rate = a.lag_rate
            why = "--lag-rate"
        elif self.capacity_rows_s:
            # oltp_write_only: 4 row changes per transaction (2 updates, 1 delete, 1 insert).
            rate = max(1, int(0.5 * self.capacity_rows_s / 4))
            why = f"50% of the measured capacity {self.capacity_rows_s:,.0f} rows/s ÷ 4 rows per transaction"
            # sysbench aborts when the upstream cannot take the rate ("event queue is full"),
            # and on a small machine the upstream, sysbench, dm-syncer and the target share
            # the cores: never ask for more than half of what the upstream did alone.
            if self.write_only_tps and rate > 0.5 * self.write_only_tps:
                rate = max(1, int(0.5 * self.write_only_tps))
                why = (f"half the upstream's own oltp_write_only rate ({self.write_only_tps:,.0f} trx/s during "
                       f"generation); 50% of dm-rs's capacity would be {0.5 * self.capacity_rows_s / 4:,.0f} "
                       "trx/s")
        else:
            rate = 20 if a.quick else 200
            why = "fixed (no capacity measured: incremental not run)"
        capped = why.startswith("half the upstream")
        log(f"lag: oltp_write_only at {rate} trx/s for {a.lag_seconds} s ({why})")
        poll = self.client(t, "lag-poll")
        hb_up = self.client(self.up, "lag-hb-up")
        hb_down = self.client(t, "lag-hb-down")
        row_hb = Row("lag", f"dm-rs heartbeat lag at {rate} trx/s", dmrs=True)
        row_sm = Row("lag", "dm-rs seconds_behind_master", dmrs=True)
        try:
            p, logf, rssf = self.start_syncer("bench_lag", t, start)
            alive = self.syncer_alive(p, logf)
            # Catch up first (nothing to do when the incremental scenario left it in sync).
            m = self.write_marker("lag-start")
            self.wait_marker(poll, m, 300 + (self.gen["rows"] / 100 if self.gen else 0), alive, "dm-syncer (lag set-up)")
            samples: list[float] = []
            errors: list[str] = []
            stop = threading.Event()
            sampling = threading.Event()

            written: list[dt.datetime] = []  # upstream NOW(6) of every heartbeat, in order
            raw: list[float] = []  # target NOW(6) − the heartbeat it shows

            def parse_ts(x: str) -> dt.datetime:
                return dt.datetime.fromisoformat(x)

            def writer() -> None:
                nxt = time.monotonic()
                while not stop.is_set() and not self.stop_event.is_set():
                    try:
                        r = hb_up.query(f"SET @t = NOW(6); REPLACE INTO {DB}.bench_heartbeat VALUES (1, @t); "
                                        "SELECT @t", 10)
                        written.append(parse_ts(r[-1][0]))
                    except (BenchError, IndexError, ValueError) as e:
                        errors.append(f"writer: {e}")
                        return
                    nxt += 0.1
                    time.sleep(max(0.0, nxt - time.monotonic()))

            def reader() -> None:
                nxt = time.monotonic() + 0.05  # out of phase with the writer
                time.sleep(0.05)
                while not stop.is_set() and not self.stop_event.is_set():
                    try:
                        r = hb_down.query(f"SELECT ts, NOW(6) FROM {DB}.bench_heartbeat WHERE id = 1", 10)
                        seen, now = parse_ts(r[0][0]), parse_ts(r[0][1])
                    except (BenchError, IndexError, ValueError) as e:
                        errors.append(f"reader: {e}")
                        return
                    if sampling.is_set():
                        raw.append(max(0.0, (now - seen).total_seconds()))
                        # The oldest heartbeat written upstream and not yet visible here.
                        i = bisect.bisect_right(written, seen)
                        samples.append(max(0.0, (now - written[i]).total_seconds()) if i < len(written) else 0.0)
                    nxt += 0.1
                    time.sleep(max(0.0, nxt - time.monotonic()))

            offset = logf.stat().st_size if logf.exists() else 0
            th = [threading.Thread(target=writer, daemon=True), threading.Thread(target=reader, daemon=True)]
            for x in th:
                x.start()
            time.sleep(0.5)  # let the first heartbeats reach the target before sampling
            sampling.set()
            t0 = time.monotonic()
            out = self.sysbench("oltp_write_only", [f"--threads={a.sysbench_threads}", f"--rate={rate}",
                                                    f"--time={a.lag_seconds}", "--events=0", "--report-interval=0"],
                                "run", a.lag_seconds + 120)
            run_secs = time.monotonic() - t0
            stop.set()
            for x in th:
                x.join(15)
            end_offset = logf.stat().st_size
            if errors:
                raise BenchError(f"heartbeat: {errors[0]}")
            alive()
            m = self.write_marker("lag-end")
            self.wait_marker(poll, m, 600, alive, "dm-syncer (lag drain)")
            _, diff, _ = self.wait_equal(t, 600)
            self.reaper.stop(p, signal.SIGTERM, 120)
            with open(logf, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read(end_offset - offset).decode(errors="replace")
            sbm = [float(s["seconds_behind_master"]) for s in statuses(chunk)]
            tm = re.search(r"transactions:\s+(\d+)\s+\(([\d.]+) per sec", out)
            tps = float(tm.group(2)) if tm else 0.0
            result = "FAIL" if diff else "PASS"
            if diff:
                self.fail("lag", f"target differs after the run: {diff}")
            else:
                self.synced_pos["t-dmrs"] = self.up.master_status()
            rss = rss_of(rssf)
            if not samples:
                raise BenchError("no heartbeat samples")
            p50, p99, mx = (percentile(samples, 50), percentile(samples, 99), max(samples))
            r50, r99, rmx = (percentile(raw, 50), percentile(raw, 99), max(raw))
            row_hb.secs, row_hb.rows_per_s = run_secs, tps * 4
            row_hb.rss_kb, row_hb.result = rss, result
            row_hb.notes = (f"now − ts: p50 {r50 * 1e3:.0f} ms, p99 {r99 * 1e3:.0f} ms, max {rmx * 1e3:.0f} ms; "
                            f"oldest unseen heartbeat: p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms, "
                            f"max {mx * 1e3:.0f} ms ({len(samples)} samples); sysbench achieved {tps:.0f} trx/s; "
                            f"rate: {why}")
            row_sm.secs, row_sm.rss_kb, row_sm.result = run_secs, rss, result
            if sbm:
                row_sm.notes = (f"p50 {percentile(sbm, 50):.0f} s, p99 {percentile(sbm, 99):.0f} s, max {max(sbm):.0f} s "
                                f"({len(sbm)} status lines/1 s)")
            else:
                row_sm.notes = "no status lines"
            log(f"lag: heartbeat now−ts p50 {r50 * 1e3:.0f} ms p99 {r99 * 1e3:.0f} ms max {rmx * 1e3:.0f} ms; "
                f"oldest unseen p50 {p50 * 1e3:.0f} ms p99 {p99 * 1e3:.0f} ms max {mx * 1e3:.0f} ms; "
                f"seconds_behind_master {row_sm.notes} ({result})")
            goal = Target("lag", "p99 < 1 s at 50% capacity")
            goal.measured = (f"at {rate} trx/s ({why}): heartbeat now − ts p99 {r99 * 1e3:.0f} ms (oldest "
                             f"unseen heartbeat p99 {p99 * 1e3:.0f} ms); dm-syncer seconds_behind_master "
                             f"{row_sm.notes}")
            goal.met = "met (heartbeat)" if r99 < 1.0 else "missed"
            if capped and r99 < 1.0:
                goal.met = "met below 50% capacity (the upstream cannot write faster here)"
            self.targets.append(goal)
        except BenchError as e:
            row_hb.result, row_hb.notes = "FAIL", str(e)[:160]
            row_sm.result = "FAIL"
            self.fail("lag", str(e))
        finally:
            for c in (poll, hb_up, hb_down):
                self.close_client(c)
        self.rows += [row_hb, row_sm]
        self.notes.append("lag: a row is replaced upstream every 100 ms with NOW(6) and read on the target every "
                          "100 ms (out of phase); 'now − ts' = target NOW(6) − the visible heartbeat (both servers on "
                          "this machine, one clock; includes up to 100 ms of write interval), 'oldest unseen "
                          "heartbeat' = age of the oldest heartbeat written upstream but not yet visible (0 when the "
                          "newest is visible); "
                          "seconds_behind_master is dm-syncer's status metric (whole seconds, every 1 s); rows/s = "
                          "sysbench's achieved rate × 4 row changes per oltp_write_only transaction")

    # ---- driver ---------------------------------------------------------------------------

    def fail(self, what: str, why: str) -> None:
        self.failures.append(f"{what}: {why}")
        log(f"FAIL {what}: {why[:2000]}")

    def run(self, scenarios: list[str]) -> None:
        a = self.args
        self.check_tools(scenarios)
        need_targets = set()
        if "full" in scenarios or "incremental" in scenarios:
            need_targets |= {"t-dmrs", "t-mydumper", "t-dump"}
        if "write-limit" in scenarios or "lag" in scenarios:
            need_targets.add("t-dmrs")
        self.start_servers(["upstream"] + sorted(need_targets))
        self.prepare()
        if "full" in scenarios:
            self.scenario_full()
        gen_needed = any(s in scenarios for s in ("incremental", "decode", "write-limit"))
        snap = []
        if "incremental" in scenarios:
            snap += ["t-dmrs", "t-mydumper", "t-dump"]
        if "lag" in scenarios:
            snap.append("t-dmrs")
        if snap:
            self.ensure_snapshot(sorted(set(snap)))
        if gen_needed:
            self.generate()
        steps = [("incremental", self.scenario_incremental), ("decode", self.scenario_decode),
                 ("write-limit", self.scenario_write_limit), ("lag", self.scenario_lag)]
        for name, fn in steps:
            if name not in scenarios:
                continue
            try:
                fn()
            except BenchError as e:
                self.fail(name, str(e))
                self.rows.append(Row(name, "(scenario failed)", result="FAIL", notes=str(e)[:160]))
        goal = Target("memory", "every dm-rs process peak RSS < 300 MB")
        rss = [(r.scenario, r.rss_kb) for r in self.rows if r.dmrs and r.rss_kb]
        if rss:
            worst = max(rss, key=lambda x: x[1])
            goal.measured = f"max {worst[1] / 1024:.0f} MB ({worst[0]})"
            goal.met = "met" if worst[1] < 300 * 1024 else "missed"
        self.targets.append(goal)
        if a.quick:
            for g in self.targets:
                g.met = "not judged (--quick)"
        self.load_after = os.getloadavg()
        self.uptime_after = uptime()

    # ---- report ---------------------------------------------------------------------------

    def versions(self) -> dict[str, str]:
        def first_line(argv: list[str]) -> str:
            try:
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30,
                                   cwd=REPO)
                return (r.stdout.strip().splitlines() or ["?"])[0]
            except (OSError, subprocess.TimeoutExpired):
                return "not available"

        v = {
            "mariadbd": first_line([self.tools.get("mariadbd", "mariadbd"), "--version"]),
            "sysbench": first_line([self.tools.get("sysbench", "sysbench"), "--version"]),
            "mydumper": first_line([self.tools.get("mydumper", "mydumper"), "--version"]),
            "myloader": first_line([self.tools.get("myloader", "myloader"), "--version"]),
            "mariadb-binlog": first_line([self.tools.get("mariadb-binlog", "mariadb-binlog"), "--version"]),
            "rustc": first_line(["rustc", "--version"]),
            "dm-rs commit": self.commit_at_start,
            "python": platform.python_version(),
        }
        end = git_state()
        if end != self.commit_at_start:
            v["dm-rs commit"] += f"; at the end of the run: {end}"
        v["dm-rs binaries"] = f"{self.bin} (built just before the run)"
        for b in ("dm-migrate", "dm-syncer", "examples/decode_binlog"):
            try:
                mtime = dt.datetime.fromtimestamp((self.bin / b).stat().st_mtime, dt.timezone.utc)
                v[f"{b} modified"] = mtime.strftime("%Y-%m-%d %H:%M:%S UTC")
            except OSError:
                pass
        return v

    def machine(self) -> dict[str, str]:
        mem = "?"
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
        except OSError:
            pass
        cpu = "?"
        try:
            cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                       if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        fmt = lambda la: " ".join(f"{x:.2f}" for x in la) if la else "?"  # noqa: E731
        return {"nproc": str(os.cpu_count()), "cpu": cpu, "memory": mem, "kernel": platform.release(),
                "load average before (1/5/15 min)": fmt(self.load_before),
                "load average after (1/5/15 min)": fmt(self.load_after or os.getloadavg()),
                "`uptime` before": self.uptime_before, "`uptime` after": self.uptime_after or uptime(),
                "note": "the cores are shared: other work on the machine (builds, tests) competes with the "
                        "benchmark; the load averages show how much"}

    def report(self, scenarios: list[str]) -> str:
        a = self.args
        lines = [f"# dm-rs benchmark {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}", ""]
        cmd = os.environ.get("BENCH_COMMAND") or shlex.join([sys.executable, *sys.argv])
        lines += ["Command:", "", f"    {cmd}", ""]
        lines += [f"Scenarios: {', '.join(scenarios)}; sizes: {a.tables} tables × {a.table_size} rows, "
                  f"threads {a.threads}, events insert/write_only/update_index "
                  f"{a.events_insert}/{a.events_write_only}/{a.events_update_index}, lag {a.lag_seconds} s, "
                  f"repeat {a.repeat}; wall time {time.time() - self.started:.0f} s", ""]
        lines += ["## Results", "", table_text(self.rows, True), ""]
        lines += ["`dm-rs ÷ this`: dm-rs's rows/s divided by this row's (above 1: dm-rs is faster; on write-limit "
                  "rows: the share of the ceiling dm-rs reaches).", ""]
        lines += ["## Targets (issue 6)", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        lines += [f"| {g.what} | {g.goal} | {g.measured} | {g.met} |" for g in self.targets]
        lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        if self.failures:
            lines += ["", "## Failures", ""] + [f"- {f}" for f in self.failures]
        lines += ["", "## Server settings", "",
                  "Every server (upstream and targets): `" + " ".join(COMMON_FLAGS) + "`; upstream adds `"
                  + " ".join(UPSTREAM_FLAGS) + "`, targets `" + " ".join(TARGET_FLAGS) + "`. dm-syncer: "
                  f"{self.syncer_desc()}, safe-mode-duration 0s"
                  + ("" if "checkpoint-flush-interval" in " ".join(a.syncer_option) else
                     ", checkpoint-flush-interval 30 (default)") + ".", ""]
        lines += ["## Versions", ""] + [f"- {k}: {v}" for k, v in self.versions().items()]
        lines += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in self.machine().items()]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# Log parsing
# --------------------------------------------------------------------------------------


def cpu_note(runs: list[Timed], tool: str, rows: int | None = None) -> str:
    """Mean CPU seconds of the tool and the servers over `runs`; with `rows`, also per 1M
    rows (the honest figure on a shared machine: wall time depends on the other load)."""
    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else 0.0
    parts: list[tuple[str, float]] = []
    cpus = [r.cpu for r in runs if r.cpu is not None]
    if cpus and tool:
        parts.append((tool, mean(cpus)))
    for k in ("target", "upstream"):
        xs = [r.servers[k] for r in runs if k in r.servers]
        if xs:
            parts.append((f"{k} mariadbd", mean(xs)))
    if not parts:
        return ""
    text = "CPU s: " + ", ".join(f"{name} {v:.1f}" for name, v in parts)
    if rows:
        text += "; CPU s per 1M rows: " + ", ".join(f"{name} {v / rows * 1e6:.1f}" for name, v in parts)
    return text


def git_state() -> str:
    """HEAD, and whether what the binaries are built from differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, timeout=30, cwd=REPO).stdout.strip() or "?"
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "examples", "Cargo.toml", "Cargo.lock"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30,
                               cwd=REPO).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    return head + (" with uncommitted changes under src/, examples/ or Cargo.*" if dirty else "")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], stdout=subprocess.PIPE, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"({path} missing)"


def kv_line(text: str, message: str) -> dict[str, str]:
    """key=value fields of the last log line containing `message`."""
    for line in reversed(text.splitlines()):
        if message in line:
            return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
    return {}


STATUS_RE = re.compile(r"status=(\{.*\})\s*$")


def statuses(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        m = STATUS_RE.search(line)
        if m:
            try:
                out.append(json.loads(m.group(1)))
            except json.JSONDecodeError:
                pass
    return out


def last_status(logf: Path) -> dict:
    try:
        s = statuses(logf.read_text(errors="replace"))
    except OSError:
        return {}
    return s[-1] if s else {}


# --------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, correctness only (CI)")
    p.add_argument("--scenario", default=",".join(SCENARIOS),
                   help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)")
    p.add_argument("--tables", type=int, help="sysbench tables (default 4; quick 2)")
    p.add_argument("--table-size", type=int, help="rows per table (default 250000; quick 2000)")
    p.add_argument("--threads", type=int, default=4,
                   help="dm-rs mydumper threads = loader pool-size = mydumper/myloader threads (default 4)")
    p.add_argument("--events", type=int,
                   help="sysbench --events of each of oltp_insert, oltp_write_only, oltp_update_index "
                        "(default 300000/150000/300000; quick 300 each)")
    p.add_argument("--sysbench-threads", type=int, default=4, help="sysbench client threads (default 4)")
    p.add_argument("--worker-count", type=int, default=16, help="dm-syncer worker-count (default 16)")
    p.add_argument("--batch", type=int, default=100, help="dm-syncer batch (default 100)")
    p.add_argument("--syncer-option", action="append", default=[], metavar="KEY=VALUE",
                   help="another key of the task's syncer config, e.g. multiple-rows=true (repeatable)")
    p.add_argument("--lag-seconds", type=int, help="steady-state lag run length (default 60; quick 5)")
    p.add_argument("--lag-rate", type=int, help="override the lag run's --rate (transactions/s)")
    p.add_argument("--repeat", type=int, help="rounds of the full scenario, alternating order; the median is "
                                              "reported (default 3; quick 1)")
    p.add_argument("--decode-repeat", type=int, help="runs of each decoder, alternating (default 2; quick 1)")
    p.add_argument("--binlog-count", action="store_true",
                   help="also count the rows with mariadb-binlog on large binlogs (a slow extra pass)")
    p.add_argument("--bin-dir", help="dm-rs binaries (default target/release; quick: target/debug)")
    p.add_argument("--release", action="store_true", help="with --quick: use target/release")
    p.add_argument("--results-dir", help="where the results file goes (default bench/results; quick: none)")
    p.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every deadline")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, data) at the end")
    a = p.parse_args(argv)
    q = a.quick
    a.tables = a.tables or (2 if q else 4)
    a.table_size = a.table_size or (2000 if q else 250000)
    if a.events is not None:
        a.events_insert = a.events_write_only = a.events_update_index = a.events
    elif q:
        a.events_insert = a.events_write_only = a.events_update_index = 300
    else:
        a.events_insert, a.events_write_only, a.events_update_index = 300000, 150000, 300000
    a.lag_seconds = a.lag_seconds or (5 if q else 60)
    a.decode_repeat = a.decode_repeat or (1 if q else 2)
    a.repeat = a.repeat or (1 if q else 3)
    if a.results_dir is None and not q:
        a.results_dir = str(REPO / "bench" / "results")
    if min(a.tables, a.table_size, a.threads, a.sysbench_threads, a.repeat, a.decode_repeat, a.worker_count,
           a.batch) < 1:
        p.error("sizes must be at least 1")
    for o in a.syncer_option:
        if "=" not in o or not o.split("=", 1)[0].strip():
            p.error(f"--syncer-option `{o}`: expected KEY=VALUE")
    return a


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    aliases = {"write_limit": "write-limit", "writelimit": "write-limit", "catchup": "incremental",
               "catch-up": "incremental"}
    scenarios = []
    for s in args.scenario.split(","):
        s = aliases.get(s.strip(), s.strip())
        if s not in SCENARIOS:
            print(f"unknown scenario `{s}` (choose from {', '.join(SCENARIOS)})", file=sys.stderr)
            return 2
        if s not in scenarios:
            scenarios.append(s)
    scenarios = [s for s in SCENARIOS if s in scenarios]

    def on_term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    bench = Bench(args)
    log(f"work dir {bench.work}; scenarios {', '.join(scenarios)}; binaries {bench.bin}")
    rc = 0
    try:
        bench.run(scenarios)
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        rc = 130
    except BenchError as e:
        bench.fail("harness", str(e))
    except Exception as e:  # noqa: BLE001 - reported, then cleaned up
        import traceback
        traceback.print_exc()
        bench.fail("harness", f"{type(e).__name__}: {e}")
    finally:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
            bench.cleanup()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if rc == 130:
        return rc
    print()
    print(table_text(bench.rows, False))
    if bench.targets and not args.quick:
        print()
        for g in bench.targets:
            print(f"target {g.what}: {g.goal} — {g.measured} — {g.met}")
    if args.results_dir:
        d = Path(args.results_dir)
        d.mkdir(parents=True, exist_ok=True)
        f = d / (dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + ".md")
        f.write_text(bench.report(scenarios))
        print(f"\nresults: {f}")
    if bench.failures:
        print(f"\n{len(bench.failures)} check(s) failed:", file=sys.stderr)
        for x in bench.failures:
            print(f"  - {x[:500]}", file=sys.stderr)
        return 1
    print("\nall correctness checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
