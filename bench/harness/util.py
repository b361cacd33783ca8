"""Small helpers: errors, logging, tools, ports, percentiles, number formats, log parsing."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from pathlib import Path


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


def fmt_num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "—"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fmt_rss(kb: int | None) -> str:
    return "—" if kb is None else f"{kb / 1024:.0f} MB"


# --------------------------------------------------------------------------------------
# Log parsing
# --------------------------------------------------------------------------------------


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
