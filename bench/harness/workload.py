"""Workload generation (for incremental, decode, write-limit)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .util import BenchError, log

if TYPE_CHECKING:
    from .bench import Bench


def generate(bench: Bench) -> None:
    a = bench.args
    assert bench.snap_pos is not None
    # (Only the GTID state says whether data changed: a BINLOG_CHECKPOINT event may follow
    # the snapshot's FLUSH BINARY LOGS.)
    cur = bench.up.one("SELECT @@GLOBAL.gtid_binlog_pos")
    if cur != bench.snap_gtid:
        raise BenchError(f"upstream changed since the snapshot (GTID {bench.snap_gtid} → {cur})")
    trx = 0
    ignored = 0  # transactions sysbench rolled back (deadlocks): counted by Handler_*, not binlogged
    stats = []
    before = handler_rows(bench)
    t0 = time.monotonic()
    for test, events in (("oltp_insert", a.events_insert), ("oltp_write_only", a.events_write_only),
                         ("oltp_update_index", a.events_update_index)):
        if events <= 0:
            continue
        log(f"generating: sysbench {test} --events={events}")
        out = bench.sysbench(test, [f"--threads={a.sysbench_threads}", f"--events={events}", "--time=0",
                                   "--report-interval=0"], "run", 300 + events / 50)
        m = re.search(r"transactions:\s+(\d+)\s+\(([\d.]+) per sec", out)
        if m:
            trx += int(m.group(1))
            stats.append(f"{test} {m.group(1)} trx at {float(m.group(2)):.0f}/s")
            if test == "oltp_write_only":
                bench.write_only_tps = float(m.group(2))
        m = re.search(r"ignored errors:\s+(\d+)", out)
        ignored += int(m.group(1)) if m else 0
    marker = bench.write_marker("generated")
    after = handler_rows(bench)
    bench.up.sql("FLUSH BINARY LOGS")
    end = bench.up.master_status()
    logs = [r[0] for r in bench.up.sql("SHOW BINARY LOGS")]
    files = [bench.up.datadir / n for n in logs if bench.snap_pos[0] <= n < end[0]]
    size = sum(f.stat().st_size for f in files)
    bench.up_sums = None
    gen_secs = time.monotonic() - t0
    count = decode_count(bench, files)
    # The upstream's own count of row operations is the independent oracle for the
    # decoder's count (per kind).
    server = {k: after[k] - before[k] for k in after}
    mine = {"inserted": count["inserts"], "updated": count["updates"], "deleted": count["deletes"]}
    # Exact unless sysbench rolled transactions back (each oltp_write_only one had at most
    # 2 updates, 1 delete and 1 insert counted but not committed).
    slack = {"inserted": ignored, "updated": 2 * ignored, "deleted": ignored}
    count_ok = all(0 <= server[k] - mine[k] <= slack[k] for k in mine)
    bench.gen = {"files": files, "bytes": size, "rows": count["rows"], "count": count, "marker": marker,
                "end": end, "trx": trx + 1, "secs": gen_secs, "server_rows": server,
                "count_ok": count_ok}
    agree = ("equal to" if server == mine else "within the rolled-back transactions of" if count_ok
             else "DIFFERENT from")
    if not count_ok:
        bench.fail("row count", f"decode_binlog counted {mine}, the upstream's Handler_* counters {server} "
                               f"({ignored} transactions rolled back)")
    bench.notes.append(f"generated binlog: {len(files)} file(s), {size / 1e6:.1f} MB, {count['rows']} row changes "
                      f"(insert {count['inserts']}, update {count['updates']}, delete {count['deletes']}; "
                      f"counted by decode_binlog: {agree} the upstream's Handler_write/update/delete deltas), "
                      f"{trx} sysbench transactions ({ignored} deadlocks, rolled back and retried by sysbench) "
                      f"({'; '.join(stats)}) in {gen_secs:.0f} s")
    log(f"generated {count['rows']} row changes in {len(files)} binlog file(s), {size / 1e6:.1f} MB")


def handler_rows(bench: Bench) -> dict[str, int]:
    """The upstream's Handler_write/update/delete: rows written, changed and deleted in
    real (not internal temporary) tables; an UPDATE that changes nothing is not counted,
    just as it writes no binlog row."""
    names = {"handler_write": "inserted", "handler_update": "updated", "handler_delete": "deleted"}
    rows = bench.up.sql("SHOW GLOBAL STATUS WHERE Variable_name IN "
                       "('Handler_write', 'Handler_update', 'Handler_delete')")
    got = {names[r[0].lower()]: int(r[1]) for r in rows if r[0].lower() in names}
    if len(got) != 3:
        raise BenchError(f"upstream: Handler_* counters missing: {rows}")
    return got


def decode_count(bench: Bench, files: list[Path]) -> dict:
    r = subprocess.run([str(bench.bin / "examples/decode_binlog"), "--json", "--host", "127.0.0.1", "--port",
                        str(bench.up.port), *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=1800 * bench.args.timeout_scale)
    if r.returncode != 0:
        raise BenchError(f"decode_binlog failed: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])
