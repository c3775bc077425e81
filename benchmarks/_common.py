"""Helpers shared by the hand-run benchmarks: timing, medians, subprocess RSS, temp dirs,
and the final summary table. Not part of the test suite."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024
GiB = 1024 * MiB


def pond_executable() -> str:
    """The ``pond`` console script of the running interpreter's environment (else $PATH)."""
    beside = Path(sys.executable).parent / "pond"
    if beside.exists():
        return str(beside)
    found = shutil.which("pond")
    if not found:
        sys.exit("benchmark: cannot find the pond command (install pondfs in this venv)")
    return found


POND = pond_executable()


def compile_pondfs() -> str:
    """Byte-compile the pondfs that the pond command runs, as pip does when it installs it;
    a line saying so. A checkout installed editable and run with PYTHONDONTWRITEBYTECODE
    set (as on these machines) would otherwise compile every module at every start (about
    0.1 s a run), which no installed pond pays."""
    import compileall

    import pondfs

    package = Path(pondfs.__file__).parent
    compileall.compile_dir(package, quiet=1)
    return f"bytecode: compiled {package}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """``median (min-max, n=N)`` of seconds, for the detail lines."""
    return f"{median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"


@dataclass
class Run:
    """One finished subprocess: wall seconds, peak RSS (MiB) of that very process, exit code."""

    seconds: float
    max_rss_mib: float
    returncode: int
    stdout: bytes = b""


def run(argv: Sequence[str], *, stdout_path: str | os.PathLike | None = None,
        capture: bool = False, check: bool = True, cwd: str | None = None) -> Run:
    """Run ``argv`` and time it; peak RSS comes from ``wait4`` on that child alone (so it is
    exact per run, unlike RUSAGE_CHILDREN's maximum over every child). Stdout goes to
    ``stdout_path``, or is captured (through a temporary file), or is discarded."""
    with tempfile.TemporaryFile() as captured:
        if stdout_path is not None:
            out = open(stdout_path, "wb")
        elif capture:
            out = captured
        else:
            out = open(os.devnull, "wb")
        try:
            start = time.perf_counter()
            proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.PIPE, cwd=cwd)
            stderr = proc.stderr.read()  # small: error lines only (no tty, so no progress bar)
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            proc.stderr.close()
        finally:
            if out is not captured:
                out.close()
        data = b""
        if capture:
            captured.seek(0)
            data = captured.read()
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {proc.returncode}: "
                           f"{stderr.decode(errors='replace').strip()}")
    # ru_maxrss is in KiB on Linux.
    return Run(seconds, usage.ru_maxrss / 1024, proc.returncode, data)


def pond(location: str, *args: str, **kw) -> Run:
    """Run the real ``pond`` CLI on ``location``."""
    return run([POND, "--pond", location, *args], **kw)


def timed(fn: Callable[..., object], *args: object) -> tuple[float, object]:
    """(seconds, result) of one call of ``fn(*args)``."""
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def sync() -> None:
    """Write back dirty pages now, so one run's writeback does not land in the next's timing."""
    os.sync()


@contextmanager
def scratch(name: str, keep: bool = False) -> Iterator[Path]:
    """A fresh directory under /tmp (or $TMPDIR), removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix=f"pondbench-{name}-"))
    try:
        yield path
    finally:
        if keep:
            print(f"  (kept {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


def header(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def detail(text: str) -> None:
    print(f"  {text}", flush=True)


@dataclass
class Summary:
    """Rows of the final table: benchmark, measured, target, pass/fail (None: info only)."""

    rows: list[tuple[str, str, str, bool | None]] = field(default_factory=list)

    def add(self, benchmark: str, measured: str, target: str, passed: bool | None) -> None:
        self.rows.append((benchmark, measured, target, passed))

    def print(self) -> None:
        verdict = {True: "PASS", False: "FAIL", None: "info"}
        table = [("benchmark", "measured", "target", "result")] + [
            (b, m, t, verdict[p]) for b, m, t, p in self.rows]
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        print("\n=== summary")
        for i, r in enumerate(table):
            print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            if i == 0:
                print("  " + "  ".join("-" * w for w in widths))

    @property
    def failed(self) -> bool:
        return any(p is False for *_, p in self.rows)
