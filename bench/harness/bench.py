"""The benchmark: set-up, servers, checksums, markers, dm-rs task files, the snapshot and the
driver that runs the scenarios (under scenarios/) in order."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from . import workload
from .config import DB, REPO
from .procs import Reaper, Timed, cpu_of, proc_cpu, rss_of
from .report import Row, Target, git_state, uptime
from .scenarios import decode, full, incremental, lag, write_limit
from .servers import Client, Server
from .util import BenchError, log, need, tail, which


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

    # ---- dm-syncer -------------------------------------------------------------------

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
            full.run(self)
        gen_needed = any(s in scenarios for s in ("incremental", "decode", "write-limit"))
        snap = []
        if "incremental" in scenarios:
            snap += ["t-dmrs", "t-mydumper", "t-dump"]
        if "lag" in scenarios:
            snap.append("t-dmrs")
        if snap:
            self.ensure_snapshot(sorted(set(snap)))
        if gen_needed:
            workload.generate(self)
        steps = [("incremental", incremental.run), ("decode", decode.run),
                 ("write-limit", write_limit.run), ("lag", lag.run)]
        for name, fn in steps:
            if name not in scenarios:
                continue
            try:
                fn(self)
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
