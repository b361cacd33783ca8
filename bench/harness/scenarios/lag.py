"""Scenario 4: steady-state lag."""

from __future__ import annotations

import bisect
import datetime as dt
import re
import signal
import threading
import time
from typing import TYPE_CHECKING

from ..config import DB
from ..procs import rss_of
from ..report import Row, Target
from ..util import BenchError, log, percentile, statuses

if TYPE_CHECKING:
    from ..bench import Bench


def run(bench: Bench) -> None:
    a = bench.args
    t = bench.server("t-dmrs")
    start = bench.synced_pos.get("t-dmrs")
    if not start:
        raise BenchError("the dm-rs target has no known synced position")
    if a.lag_rate:
        rate = a.lag_rate
        why = "--lag-rate"
    elif bench.capacity_rows_s:
        # oltp_write_only: 4 row changes per transaction (2 updates, 1 delete, 1 insert).
        rate = max(1, int(0.5 * bench.capacity_rows_s / 4))
        why = f"50% of the measured capacity {bench.capacity_rows_s:,.0f} rows/s ÷ 4 rows per transaction"
        # sysbench aborts when the upstream cannot take the rate ("event queue is full"),
        # and on a small machine the upstream, sysbench, dm-syncer and the target share
        # the cores: never ask for more than half of what the upstream did alone.
        if bench.write_only_tps and rate > 0.5 * bench.write_only_tps:
            rate = max(1, int(0.5 * bench.write_only_tps))
            why = (f"half the upstream's own oltp_write_only rate ({bench.write_only_tps:,.0f} trx/s during "
                   f"generation); 50% of dm-rs's capacity would be {0.5 * bench.capacity_rows_s / 4:,.0f} "
                   "trx/s")
    else:
        rate = 20 if a.quick else 200
        why = "fixed (no capacity measured: incremental not run)"
    capped = why.startswith("half the upstream")
    log(f"lag: oltp_write_only at {rate} trx/s for {a.lag_seconds} s ({why})")
    poll = bench.client(t, "lag-poll")
    hb_up = bench.client(bench.up, "lag-hb-up")
    hb_down = bench.client(t, "lag-hb-down")
    row_hb = Row("lag", f"dm-rs heartbeat lag at {rate} trx/s", dmrs=True)
    row_sm = Row("lag", "dm-rs seconds_behind_master", dmrs=True)
    try:
        p, logf, rssf = bench.start_syncer("bench_lag", t, start)
        alive = bench.syncer_alive(p, logf)
        # Catch up first (nothing to do when the incremental scenario left it in sync).
        m = bench.write_marker("lag-start")
        bench.wait_marker(poll, m, 300 + (bench.gen["rows"] / 100 if bench.gen else 0), alive, "dm-syncer (lag set-up)")
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
            while not stop.is_set() and not bench.stop_event.is_set():
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
            while not stop.is_set() and not bench.stop_event.is_set():
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
        out = bench.sysbench("oltp_write_only", [f"--threads={a.sysbench_threads}", f"--rate={rate}",
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
        m = bench.write_marker("lag-end")
        bench.wait_marker(poll, m, 600, alive, "dm-syncer (lag drain)")
        _, diff, _ = bench.wait_equal(t, 600)
        bench.reaper.stop(p, signal.SIGTERM, 120)
        with open(logf, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read(end_offset - offset).decode(errors="replace")
        sbm = [float(s["seconds_behind_master"]) for s in statuses(chunk)]
        tm = re.search(r"transactions:\s+(\d+)\s+\(([\d.]+) per sec", out)
        tps = float(tm.group(2)) if tm else 0.0
        result = "FAIL" if diff else "PASS"
        if diff:
            bench.fail("lag", f"target differs after the run: {diff}")
        else:
            bench.synced_pos["t-dmrs"] = bench.up.master_status()
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
        bench.targets.append(goal)
    except BenchError as e:
        row_hb.result, row_hb.notes = "FAIL", str(e)[:160]
        row_sm.result = "FAIL"
        bench.fail("lag", str(e))
    finally:
        for c in (poll, hb_up, hb_down):
            bench.close_client(c)
    bench.rows += [row_hb, row_sm]
    bench.notes.append("lag: a row is replaced upstream every 100 ms with NOW(6) and read on the target every "
                      "100 ms (out of phase); 'now − ts' = target NOW(6) − the visible heartbeat (both servers on "
                      "this machine, one clock; includes up to 100 ms of write interval), 'oldest unseen "
                      "heartbeat' = age of the oldest heartbeat written upstream but not yet visible (0 when the "
                      "newest is visible); "
                      "seconds_behind_master is dm-syncer's status metric (whole seconds, every 1 s); rows/s = "
                      "sysbench's achieved rate × 4 row changes per oltp_write_only transaction")
