"""Scenario 2: incremental catch-up."""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

from ..procs import Timed, child_pids, proc_cpu, rss_of
from ..report import Row, Target, cpu_note
from ..servers import Server
from ..util import BenchError, last_status, log

if TYPE_CHECKING:
    from ..bench import Bench


def run(bench: Bench) -> None:
    assert bench.gen is not None and bench.snap_pos is not None
    g = bench.gen
    rows, size = g["rows"], g["bytes"]
    timeout = 300 + rows / 100
    out: list[Row] = []

    # dm-rs
    t = bench.server("t-dmrs")
    log(f"incremental: dm-syncer applying {rows} row changes into {t.name}")
    poll = bench.client(t, "inc-dmrs")
    row = Row("incremental", f"dm-rs dm-syncer ({bench.syncer_desc()})", dmrs=True)
    try:
        c0 = bench.server_cpu(t)
        p, logf, rssf = bench.start_syncer("bench_inc", t, bench.snap_pos)
        t0 = time.monotonic()
        seen = bench.wait_marker(poll, g["marker"], timeout, bench.syncer_alive(p, logf), "dm-syncer")
        cpu = Timed(0, 0, None, sum(proc_cpu(c) for c in child_pids(p.pid)), bench.server_cpu(t, c0))
        done, diff, rounds = bench.wait_equal(t, max(120.0, timeout))
        secs = seen - t0
        extra = f"equal at the first checksum after the marker ({done - seen:.1f} s); "
        if diff is None and rounds > 1:
            # Other workers were still committing when the marker arrived.
            secs = done - t0
            extra = f"done = end of checksum round {rounds} after the marker; "
        bench.reaper.stop(p, signal.SIGTERM, 120)
        status = last_status(logf)
        row.secs, row.rows_per_s, row.mb_per_s = secs, rows / secs, size / 1e6 / secs
        row.rss_kb = rss_of(rssf)
        row.ratio = "1.00"
        row.notes = extra + (f"syncer total_rows={status.get('total_rows')}; " if status else "") + \
            cpu_note([cpu], "dm-syncer", rows)
        if diff:
            row.result = "FAIL"
            bench.fail("incremental/dm-rs", f"target differs: {diff}")
        else:
            row.result = "PASS"
            bench.synced_pos["t-dmrs"] = g["end"]
            bench.dmrs_inc_rows_s = rows / secs
            bench.capacity_rows_s = rows / secs
        log(f"incremental: dm-rs {secs:.1f} s, {rows / secs:,.0f} rows/s ({row.result})")
    except BenchError as e:
        row.result, row.notes = "FAIL", str(e)[:160]
        bench.fail("incremental/dm-rs", str(e))
    finally:
        bench.close_client(poll)
    out.append(row)

    # MariaDB replicas
    for name, threads, mode, label in (("t-mydumper", 0, "conservative", "MariaDB replica, serial"),
                                       ("t-dump", 4, "optimistic", "MariaDB replica, 4 threads optimistic")):
        t = bench.server(name)
        log(f"incremental: {label} applying {rows} row changes into {t.name}")
        row = Row("incremental", label)
        poll = bench.client(t, f"inc-{name}")
        try:
            t.sql("STOP SLAVE; RESET SLAVE ALL;"
                  f"SET GLOBAL slave_parallel_threads = {threads};"
                  f"SET GLOBAL slave_parallel_mode = '{mode}';"
                  f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={bench.up.port}, MASTER_USER='root', "
                  f"MASTER_PASSWORD='', MASTER_LOG_FILE='{bench.snap_pos[0]}', MASTER_LOG_POS={bench.snap_pos[1]}, "
                  "MASTER_USE_GTID=no")
            c0 = bench.server_cpu(t)
            t0 = time.monotonic()
            t.sql("START SLAVE")

            def alive(t: Server = t) -> None:
                st = dict((k, v) for k, v in t.sql("SHOW SLAVE STATUS", vertical=True))
                for k in ("Last_SQL_Errno", "Last_IO_Errno"):
                    if st.get(k, "0") not in ("0", ""):
                        raise BenchError(f"replica {t.name} stopped: {st.get(k.replace('Errno', 'Error'))}")

            seen = bench.wait_marker(poll, g["marker"], timeout, alive, label)
            secs = seen - t0
            row.notes = cpu_note([Timed(0, 0, None, None, bench.server_cpu(t, c0))], "", rows)
            done, diff, rounds = bench.wait_equal(t, max(120.0, timeout))
            if diff is None and rounds > 1:
                secs = done - t0
            t.sql("STOP SLAVE; RESET SLAVE ALL")
            row.secs, row.rows_per_s, row.mb_per_s = secs, rows / secs, size / 1e6 / secs
            if diff:
                row.result = "FAIL"
                bench.fail(f"incremental/{label}", f"target differs: {diff}")
            else:
                row.result = "PASS"
                bench.synced_pos[name] = g["end"]
                if bench.dmrs_inc_rows_s:
                    row.ratio = f"{bench.dmrs_inc_rows_s / row.rows_per_s:.2f}"
            log(f"incremental: {label} {secs:.1f} s, {rows / secs:,.0f} rows/s ({row.result})")
        except BenchError as e:
            row.result, row.notes = "FAIL", str(e)[:160]
            bench.fail(f"incremental/{label}", str(e))
            try:
                t.sql("STOP SLAVE; RESET SLAVE ALL", timeout=60)
            except BenchError:
                pass
        finally:
            bench.close_client(poll)
        out.append(row)
    bench.rows += out
    bench.notes.append("incremental: rows/s = row changes in the generated binlog (decoded) / seconds from the "
                      "applier's start (dm-syncer launch, START SLAVE) until the last upstream transaction (a "
                      "marker row) is visible on the target and CHECKSUM TABLE equals the upstream's; MB/s = "
                      "binlog bytes / seconds")
    serial = next((r for r in out if r.tool == "MariaDB replica, serial" and r.result == "PASS"), None)
    goal = Target("incremental vs replica", "dm-rs rows/s ≥ 2 × serial replica")
    if bench.dmrs_inc_rows_s and serial and serial.rows_per_s:
        f = bench.dmrs_inc_rows_s / serial.rows_per_s
        goal.measured = f"{bench.dmrs_inc_rows_s:,.0f} vs {serial.rows_per_s:,.0f} rows/s = {f:.2f}×"
        goal.met = "met" if f >= 2 else "missed"
    bench.targets.append(goal)
