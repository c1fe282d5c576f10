"""Timing and memory of one step: a child process (wall time, peak RSS) or a call here (wall time).

Why child processes: generation and ingest are timed as a user runs them (`clinic-kpis sample`,
`clinic-kpis ingest`), and the peak resident memory of exactly that process is what the target
is about; `os.wait4` reports it for the child alone.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class BenchmarkError(RuntimeError):
    """A step of the benchmark failed; the message names the command and its error output."""


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    peak_rss_mb: float
    stdout: str


def clinic_kpis(*args: str, cwd: Path) -> ChildRun:
    """Run the real `clinic-kpis` command line in a child process; its wall time and peak RSS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}
    return run_child([sys.executable, "-c", "from kpis.cli import main; main()", *args], cwd=cwd, env=env)


def run_child(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> ChildRun:
    """Run `command`; raise BenchmarkError with its stderr if it fails."""
    out_path, err_path = cwd / ".bench-stdout", cwd / ".bench-stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    out_path.unlink()
    err_path.unlink()
    if child.returncode != 0:
        raise BenchmarkError(f"{' '.join(command[3:] or command)} failed (exit {child.returncode}): {stderr.strip()}")
    return ChildRun(seconds=seconds, peak_rss_mb=usage.ru_maxrss / 1024, stdout=stdout)


def timed(call: Callable[[], T]) -> tuple[float, T]:
    """(wall seconds, result) of one call."""
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def median(values: list[float]) -> float:
    return statistics.median(values)


def process_cpu() -> float:
    """CPU seconds of this process so far (user + system, every thread: DuckDB's and Arrow's too),
    steadier than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def status_mb(field: str) -> float:
    """A memory line of /proc/self/status in MB (MiB): VmRSS now, VmHWM the peak since the last
    reset, RssAnon the anonymous part; NaN where the kernel has no such line."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")
