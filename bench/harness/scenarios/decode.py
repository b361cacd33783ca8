"""Scenario 5: decode."""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
from typing import TYPE_CHECKING

from ..procs import Timed
from ..report import Row, Target
from ..util import BenchError, tail

if TYPE_CHECKING:
    from ..bench import Bench


def run(bench: Bench) -> None:
    assert bench.gen is not None
    files = [str(f) for f in bench.gen["files"]]
    size = bench.gen["bytes"]
    rows = bench.gen["rows"]
    for f in files:  # warm the page cache for both tools
        with open(f, "rb") as fh:
            while fh.read(1 << 20):
                pass
    # Correctness: decode_binlog's count per kind equals the upstream's InnoDB counters
    # (checked in generate()), every run counts the same, and (on small binlogs, where it
    # is cheap, or with --binlog-count) mariadb-binlog counts the same rows.
    theirs = None
    if bench.args.quick or bench.args.binlog_count or size < 64e6:
        cnt = subprocess.run(
            f"{shlex.quote(bench.tools['mariadb-binlog'])} --base64-output=decode-rows -v "
            + " ".join(map(shlex.quote, files))
            + " | grep -cE '^### (INSERT INTO|UPDATE|DELETE FROM) '",
            shell=True, stdout=subprocess.PIPE, text=True, timeout=1800 * bench.args.timeout_scale)
        theirs = int(cnt.stdout.strip() or 0)
    ours_argv = [str(bench.bin / "examples/decode_binlog"), "--json", "--host", "127.0.0.1", "--port",
                 str(bench.up.port), *files]
    theirs_argv = [bench.tools["mariadb-binlog"], "--base64-output=decode-rows", "-v", *files]
    runs: dict[str, list[Timed]] = {"ours": [], "theirs": []}
    internal = []
    for r in range(bench.args.decode_repeat):
        order = ["ours", "theirs"] if r % 2 == 0 else ["theirs", "ours"]
        for who in order:
            outf = bench.work / f"decode-{who}-{r}.out"
            with open(outf, "wb") if who == "ours" else open(os.devnull, "wb") as out:
                res = bench.run_timed(ours_argv if who == "ours" else theirs_argv, f"decode-{who}-{r}",
                                     600 + size / 1e6, stdout=out)
            if res.rc != 0:
                raise BenchError(f"decode ({who}) exited with {res.rc}: {tail(bench.work / f'decode-{who}-{r}.log')}")
            runs[who].append(res)
            if who == "ours":
                internal.append(json.loads(outf.read_text().strip().splitlines()[-1]))
    ours = statistics.median(x.secs for x in runs["ours"])
    theirs_s = statistics.median(x.secs for x in runs["theirs"])
    ok = bench.gen["count_ok"] and (theirs is None or theirs == rows) and all(i["rows"] == rows for i in internal)
    inner = statistics.median(i["rows_per_sec"] for i in internal)
    r1 = Row("decode", "dm-rs decode_binlog (1 thread)", ours, rows / ours, size / 1e6 / ours, "1.00",
             max((x.rss_kb or 0) for x in runs["ours"]) or None, "PASS" if ok else "FAIL",
             f"decode loop alone {inner:,.0f} rows/s; median of {len(runs['ours'])}", dmrs=True)
    r2 = Row("decode", "mariadb-binlog -v --base64-output=decode-rows", theirs_s, rows / theirs_s,
             size / 1e6 / theirs_s, f"{theirs_s / ours:.2f}", max((x.rss_kb or 0) for x in runs["theirs"]) or None,
             "PASS" if ok else "FAIL",
             (f"counted {theirs} rows; " if theirs is not None else "") + f"median of {len(runs['theirs'])}")
    if not ok:
        bench.fail("decode", f"row counts differ: decode_binlog {[i['rows'] for i in internal]}, "
                            f"mariadb-binlog {theirs}, generated {rows}")
    bench.rows += [r1, r2]
    bench.notes.append("decode: seconds = wall clock of the whole process on page-cached files (ours includes "
                      "reading information_schema once); 'decode loop alone' is the example's own timing; "
                      "correctness = decode_binlog's inserts/updates/deletes equal the upstream's "
                      "Handler_write/update/delete deltas over the generation (and mariadb-binlog's count when it was "
                      "taken: --quick, binlogs < 64 MB, or --binlog-count)")
    goal = Target("decode", "≥ 2M rows/s per core on sysbench rows, and faster than mariadb-binlog")
    goal.measured = (f"{rows / ours:,.0f} rows/s wall ({inner:,.0f} in the loop) on 1 thread; "
                     f"mariadb-binlog {rows / theirs_s:,.0f} rows/s")
    goal.met = "met" if inner >= 2e6 and ours < theirs_s else "missed"
    bench.targets.append(goal)
