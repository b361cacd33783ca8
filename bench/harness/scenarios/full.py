"""Scenario 1: full."""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import time
from typing import TYPE_CHECKING

from ..config import DB
from ..procs import Timed, cpu_of, rss_of
from ..report import Row, Target, cpu_note
from ..servers import Server
from ..util import BenchError, kv_line, log, tail

if TYPE_CHECKING:
    from ..bench import Bench


def quiesce(bench: Bench, timeout: float = 120.0) -> float:
    """Has every server write back its dirty pages before a timed run, so that a run does
    not pay for the background flushing of the previous tool's load (on 2 cores that
    shifted single runs by a second or more); returns the seconds it took."""
    t0 = time.monotonic()
    servers = list(bench.servers.values())
    names = ["innodb_max_dirty_pages_pct", "innodb_io_capacity", "innodb_io_capacity_max"]
    saved = {s.name: s.sql("SELECT " + ", ".join(f"@@GLOBAL.{n}" for n in names))[0] for s in servers}
    deadline = bench.deadline(timeout)
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


def run(bench: Bench) -> None:
    a = bench.args
    rows_total = a.tables * a.table_size
    up = bench.up
    data_bytes: int | None = None
    results: dict[str, list[tuple[Timed, str, str | None]]] = {"dm-rs": [], "mydumper": [], "mariadb-dump": []}

    def drop(t: Server) -> None:
        t.sql(f"DROP DATABASE IF EXISTS {DB}; DROP DATABASE IF EXISTS dm_meta")
        quiesce(bench)

    def run_dmrs(r: int) -> tuple[Timed, str]:
        t = bench.server("t-dmrs")
        drop(t)
        name = f"bench_full_{r}"
        dump_dir = bench.work / f"dmrs-dump-{r}"
        task, source = bench.write_task(name, "full", t, None, dump_dir)
        logf = bench.work / name / "dm-migrate.log"
        res = bench.run_timed([str(bench.bin / "dm-migrate"), "--task", str(task), "--source", str(source),
                              "--log-file", str(logf), "--status-interval", "0"], f"{name}-run",
                             300 + rows_total / 200)
        if res.rc != 0:
            raise BenchError(f"dm-migrate full exited with {res.rc}: {tail(bench.work / f'{name}-run.log')}\n{tail(logf)}")
        text = logf.read_text(errors="replace")
        parts = []
        d = kv_line(text, "dump finished")
        lo = kv_line(text, "load finished")
        if d.get("secs"):
            parts.append(f"dump {float(d['secs']):.1f}s")
        if lo.get("seconds"):
            parts.append(f"load {float(lo['seconds'].strip(chr(34))):.1f}s")
        for p in bench.work.glob(f"dmrs-dump-{r}*"):
            shutil.rmtree(p, ignore_errors=True)
        return res, " + ".join(parts)

    def run_mydumper(r: int) -> tuple[Timed, str]:
        nonlocal data_bytes
        t = bench.server("t-mydumper")
        drop(t)
        out = bench.work / f"mydumper-{r}"
        d = bench.run_timed([bench.tools["mydumper"], "-h", "127.0.0.1", "-P", str(up.port), "-u", "root",
                            "-B", DB, "--threads", str(a.threads), "-o", str(out)], f"mydumper-{r}",
                           300 + rows_total / 200)
        if d.rc != 0:
            raise BenchError(f"mydumper exited with {d.rc}: {tail(bench.work / f'mydumper-{r}.log')}")
        if data_bytes is None:
            data_bytes = sum(f.stat().st_size for f in out.glob(f"{DB}.*.sql")
                             if not f.name.endswith("-schema.sql"))
        lo = bench.run_timed([bench.tools["myloader"], "-d", str(out), "-t", str(a.threads), "-h", "127.0.0.1",
                             "-P", str(t.port), "-u", "root"], f"myloader-{r}", 300 + rows_total / 200)
        if lo.rc != 0:
            raise BenchError(f"myloader exited with {lo.rc}: {tail(bench.work / f'myloader-{r}.log')}")
        shutil.rmtree(out, ignore_errors=True)
        rss = max(x for x in (d.rss_kb, lo.rss_kb, 0) if x is not None) or None
        cpu = (d.cpu or 0) + (lo.cpu or 0)
        return Timed(d.secs + lo.secs, 0, rss, cpu), f"dump {d.secs:.1f}s + load {lo.secs:.1f}s"

    def run_dump(r: int) -> tuple[Timed, str]:
        t = bench.server("t-dump")
        drop(t)
        name = f"mariadb-dump-{r}"
        logf = bench.work / f"{name}.log"
        rss1, rss2 = bench.work / f"{name}.dump.time", bench.work / f"{name}.load.time"
        with open(logf, "ab") as err:
            t0 = time.monotonic()
            p1 = bench.reaper.spawn([bench.tools["mariadb-dump"], "--no-defaults", "-h127.0.0.1", f"-P{up.port}",
                                    "-uroot", "--default-character-set=utf8mb4", "--single-transaction",
                                    "--databases", DB], stdout=subprocess.PIPE, stderr=err, rss_file=rss1)
            p2 = bench.reaper.spawn(t.client_argv(), stdin=p1.stdout, stderr=err, rss_file=rss2)
            assert p1.stdout is not None
            p1.stdout.close()
            deadline = bench.deadline(300 + rows_total / 100)
            for p in (p1, p2):
                try:
                    p.wait(max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    bench.reaper.stop(p1, signal.SIGKILL)
                    bench.reaper.stop(p2, signal.SIGKILL)
                    raise BenchError(f"mariadb-dump | mariadb still running at the deadline:\n{tail(logf)}")
            secs = time.monotonic() - t0
            bench.reaper.stop(p1)
            bench.reaper.stop(p2)
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
            t = bench.server(targets[tool])
            try:
                c0 = bench.server_cpu(t)
                res, note = runners[tool](r)
                res.servers = bench.server_cpu(t, c0)
                diff = bench.compare(t)
            except BenchError as e:
                bench.fail(f"full/{tool}", str(e))
                results[tool].append((Timed(0, 1, None), "", str(e)))
                continue
            results[tool].append((res, note, diff))
            if diff:
                bench.fail(f"full/{tool}", f"target differs: {diff}")
            else:
                bench.synced_pos[targets[tool]] = bench.snap_pos  # type: ignore[assignment]
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
    bench.rows += rows_out
    if data_bytes:
        bench.notes.append(f"full: MB/s = bytes of mydumper's data files ({data_bytes / 1e6:.1f} MB, the same "
                          "numerator for every tool) / seconds; seconds = dump + load, wall clock; before "
                          "each run the target's database is dropped and every server writes back its dirty "
                          "pages (innodb_max_dirty_pages_pct = 0 and innodb_io_capacity 100000 until ≤ 100 are left, then "
                          "restored)")
    goal = Target("full", "dm-rs time ≤ 0.67 × mydumper+myloader (equal threads)")
    if "dm-rs" in best and "mydumper" in best:
        f = best["dm-rs"] / best["mydumper"]
        goal.measured = f"{best['dm-rs']:.1f} s vs {best['mydumper']:.1f} s = {f:.2f}×"
        goal.met = "met" if f <= 0.67 else "missed"
    bench.targets.append(goal)
