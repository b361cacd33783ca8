"""Scenario 3: write limit."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import DB
from ..report import Row, Target
from ..util import BenchError, log, tail

if TYPE_CHECKING:
    from ..bench import Bench


def run(bench: Bench) -> None:
    a = bench.args
    t = bench.server("t-dmrs")
    n_total = bench.gen["rows"] if bench.gen else a.tables * 100
    have = [int(bench.up.one(f"SELECT COUNT(*) FROM {DB}.sbtest{i}")) for i in range(1, a.tables + 1)]
    per = [n_total // a.tables + (1 if i < n_total % a.tables else 0) for i in range(a.tables)]
    per = [min(n, h) for n, h in zip(per, have)]
    if sum(per) < n_total:
        bench.notes.append(f"write limit: only {sum(per)} of {n_total} rows exist upstream; measured with those")
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
        expect[tab] = tuple(bench.up.sql(
            f"SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad))) FROM {sub}")[0])
        csv = bench.files / f"wl-{tab}.tsv"
        bench.up.sql(f"SELECT * INTO OUTFILE '{csv}' FROM {DB}.{tab} ORDER BY id LIMIT {k}")
        csv_files.append((tab, csv))
        ins = bench.files / f"wl-{tab}.sql"
        with open(ins, "wb") as out:
            r = subprocess.run([bench.tools["mariadb-dump"], "--no-defaults", "-h127.0.0.1", f"-P{bench.up.port}",
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
            creates.append(bench.up.sql(f"SHOW CREATE TABLE {DB}.sbtest{i}")[0][1].replace("\\n", "\n"))

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
        logf = open(bench.work / f"{label}.log", "ab")  # noqa: SIM115
        deadline = bench.deadline(600 + n / 200)
        t0 = time.monotonic()
        try:
            while pending or running:
                while pending and len(running) < width:
                    argv, inp = pending.pop(0)
                    fh = open(inp, "rb") if inp else subprocess.DEVNULL  # noqa: SIM115
                    running.append((bench.reaper.spawn(argv, stdin=fh, stderr=logf), fh))
                for p, fh in list(running):
                    if p.poll() is not None:
                        running.remove((p, fh))
                        if fh is not subprocess.DEVNULL:
                            fh.close()  # type: ignore[union-attr]
                        bench.reaper.stop(p)
                        if p.returncode:
                            raise BenchError(f"{label}: a client failed:\n{tail(bench.work / f'{label}.log')}")
                if time.monotonic() > deadline:
                    raise BenchError(f"{label}: still running at the deadline")
                time.sleep(0.005)
            return time.monotonic() - t0
        finally:
            for p, _ in running:
                bench.reaper.stop(p, signal.SIGKILL)
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
                bench.fail(f"write limit/{label}", diff)
            else:
                bench.write_limit_rows_s[label] = n / secs
                if bench.dmrs_inc_rows_s:
                    row.ratio = f"{bench.dmrs_inc_rows_s / row.rows_per_s:.2f}"
            log(f"write limit: {label} {secs:.1f} s, {n / secs:,.0f} rows/s ({row.result})")
        except BenchError as e:
            row.result, row.notes = "FAIL", str(e)[:160]
            bench.fail(f"write limit/{label}", str(e))
        bench.rows.append(row)
    t.sql(f"DROP DATABASE IF EXISTS {wl}")
    for _, f in insert_files + csv_files:
        f.unlink(missing_ok=True)
    bench.notes.append(f"write limit: {n} rows (= the incremental row changes) of the final upstream tables, "
                      "inserted into empty tables of the same schema on the dm-rs target; INSERT files are "
                      "`mariadb-dump --compact --net-buffer-length=1M` (≈1 MB statements, autocommit), "
                      "LOAD DATA reads `SELECT ... INTO OUTFILE` files; one client per table, at most --threads "
                      "at a time; MB/s = input file bytes / seconds; ratio = dm-rs incremental rows/s ÷ this")
    goal = Target("incremental vs write limit", "dm-rs incremental rows/s ≥ 0.8 × write limit (the faster method)")
    if bench.dmrs_inc_rows_s and bench.write_limit_rows_s:
        best_label, best = max(bench.write_limit_rows_s.items(), key=lambda kv: kv[1])
        f = bench.dmrs_inc_rows_s / best
        goal.measured = f"{bench.dmrs_inc_rows_s:,.0f} vs {best:,.0f} rows/s ({best_label}) = {f:.2f}"
        goal.met = "met" if f >= 0.8 else "missed"
    bench.targets.append(goal)
