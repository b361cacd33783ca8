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
import datetime as dt
import signal
import sys
from pathlib import Path

# The harness package (bench/harness/) lives next to this script.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.bench import Bench  # noqa: E402
from harness.config import REPO, SCENARIOS  # noqa: E402
from harness.report import report_text, table_text  # noqa: E402
from harness.util import BenchError, log  # noqa: E402


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
        f.write_text(report_text(bench, scenarios))
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
