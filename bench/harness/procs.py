"""Processes: every child is tracked and stopped by PID at the end (also on errors/Ctrl-C)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .util import log


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


class Reaper:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.lock = threading.Lock()
        self.time_bin = "/usr/bin/time" if Path("/usr/bin/time").exists() else None

    def spawn(self, argv: list[str], *, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
              stderr=subprocess.DEVNULL, text: bool = False, rss_file: Path | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        """Starts `argv` in its own session (so a terminal's Ctrl-C reaches only this
        script, which then stops everything in order). With `rss_file` it runs under
        `/usr/bin/time -v -o rss_file` to record its peak RSS."""
        wrapped = False
        if rss_file is not None and self.time_bin:
            argv = [self.time_bin, "-v", "-o", str(rss_file)] + argv
            wrapped = True
        p = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, text=text,
                             start_new_session=True, cwd=cwd)
        p.bench_wrapped = wrapped  # type: ignore[attr-defined]
        with self.lock:
            self.procs.append(p)
        return p

    def send(self, p: subprocess.Popen, sig: int) -> None:
        """Sends `sig` to the program `p` runs (for a time-wrapped one: time's child, since
        GNU time would die and orphan it)."""
        if p.poll() is not None:
            return
        pids = child_pids(p.pid) if getattr(p, "bench_wrapped", False) else []
        for pid in pids or [p.pid]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, p: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if p.poll() is None:
            self.send(p, sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in child_pids(p.pid) if getattr(p, "bench_wrapped", False) else []:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                p.kill()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    log(f"pid {p.pid} did not exit after SIGKILL")
        with self.lock:
            if p in self.procs:
                self.procs.remove(p)
        return p.returncode

    def stop_all(self) -> None:
        with self.lock:
            procs = list(reversed(self.procs))
        for p in procs:
            self.stop(p, signal.SIGTERM, 20.0)


def rss_of(path: Path) -> int | None:
    """Peak RSS in KiB from a `/usr/bin/time -v` report."""
    try:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", path.read_text())
    except OSError:
        return None
    return int(m.group(1)) if m else None


def cpu_of(path: Path) -> float | None:
    """User + system CPU seconds from a `/usr/bin/time -v` report."""
    try:
        text = path.read_text()
    except OSError:
        return None
    u = re.search(r"User time \(seconds\): ([\d.]+)", text)
    k = re.search(r"System time \(seconds\): ([\d.]+)", text)
    return float(u.group(1)) + float(k.group(1)) if u and k else None


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timed:
    secs: float
    rc: int
    rss_kb: int | None
    cpu: float | None = None
    # CPU seconds of the servers during the run: {"target": s, "upstream": s}
    servers: dict[str, float] = field(default_factory=dict)
