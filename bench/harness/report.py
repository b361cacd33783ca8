"""Results: the table rows, the targets of issue 6, and the results file (versions, machine)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import COMMON_FLAGS, REPO, TARGET_FLAGS, UPSTREAM_FLAGS
from .procs import Timed
from .util import fmt_num, fmt_rss

if TYPE_CHECKING:
    from .bench import Bench


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


def versions(bench: Bench) -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30,
                               cwd=REPO)
            return (r.stdout.strip().splitlines() or ["?"])[0]
        except (OSError, subprocess.TimeoutExpired):
            return "not available"

    v = {
        "mariadbd": first_line([bench.tools.get("mariadbd", "mariadbd"), "--version"]),
        "sysbench": first_line([bench.tools.get("sysbench", "sysbench"), "--version"]),
        "mydumper": first_line([bench.tools.get("mydumper", "mydumper"), "--version"]),
        "myloader": first_line([bench.tools.get("myloader", "myloader"), "--version"]),
        "mariadb-binlog": first_line([bench.tools.get("mariadb-binlog", "mariadb-binlog"), "--version"]),
        "rustc": first_line(["rustc", "--version"]),
        "dm-rs commit": bench.commit_at_start,
        "python": platform.python_version(),
    }
    end = git_state()
    if end != bench.commit_at_start:
        v["dm-rs commit"] += f"; at the end of the run: {end}"
    v["dm-rs binaries"] = f"{bench.bin} (built just before the run)"
    for b in ("dm-migrate", "dm-syncer", "examples/decode_binlog"):
        try:
            mtime = dt.datetime.fromtimestamp((bench.bin / b).stat().st_mtime, dt.timezone.utc)
            v[f"{b} modified"] = mtime.strftime("%Y-%m-%d %H:%M:%S UTC")
        except OSError:
            pass
    return v


def machine(bench: Bench) -> dict[str, str]:
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
            "load average before (1/5/15 min)": fmt(bench.load_before),
            "load average after (1/5/15 min)": fmt(bench.load_after or os.getloadavg()),
            "`uptime` before": bench.uptime_before, "`uptime` after": bench.uptime_after or uptime(),
            "note": "the cores are shared: other work on the machine (builds, tests) competes with the "
                    "benchmark; the load averages show how much"}


def report_text(bench: Bench, scenarios: list[str]) -> str:
    a = bench.args
    lines = [f"# dm-rs benchmark {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}", ""]
    cmd = os.environ.get("BENCH_COMMAND") or shlex.join([sys.executable, *sys.argv])
    lines += ["Command:", "", f"    {cmd}", ""]
    lines += [f"Scenarios: {', '.join(scenarios)}; sizes: {a.tables} tables × {a.table_size} rows, "
              f"threads {a.threads}, events insert/write_only/update_index "
              f"{a.events_insert}/{a.events_write_only}/{a.events_update_index}, lag {a.lag_seconds} s, "
              f"repeat {a.repeat}; wall time {time.time() - bench.started:.0f} s", ""]
    lines += ["## Results", "", table_text(bench.rows, True), ""]
    lines += ["`dm-rs ÷ this`: dm-rs's rows/s divided by this row's (above 1: dm-rs is faster; on write-limit "
              "rows: the share of the ceiling dm-rs reaches).", ""]
    lines += ["## Targets (issue 6)", "", "| target | goal | measured | met |", "|---|---|---|---|"]
    lines += [f"| {g.what} | {g.goal} | {g.measured} | {g.met} |" for g in bench.targets]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in bench.notes]
    if bench.failures:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in bench.failures]
    lines += ["", "## Server settings", "",
              "Every server (upstream and targets): `" + " ".join(COMMON_FLAGS) + "`; upstream adds `"
              + " ".join(UPSTREAM_FLAGS) + "`, targets `" + " ".join(TARGET_FLAGS) + "`. dm-syncer: "
              f"{bench.syncer_desc()}, safe-mode-duration 0s"
              + ("" if "checkpoint-flush-interval" in " ".join(a.syncer_option) else
                 ", checkpoint-flush-interval 30 (default)") + ".", ""]
    lines += ["## Versions", ""] + [f"- {k}: {v}" for k, v in versions(bench).items()]
    lines += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in machine(bench).items()]
    return "\n".join(lines) + "\n"
