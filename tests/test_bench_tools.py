"""The tools benchmark (benchmarks/bench_tools.py) runs end to end: ``--quick`` on a small
synthetic tree prints a table line for every workload, with figures for the three targets
and the requests both daemons served, and leaves no mount behind. No timing is asserted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from bench_tools import ROWS  # noqa: E402

pytestmark = [pytest.mark.fuse, pytest.mark.slow]

NUMBER = r"\d+(?:\.\d+)?"


def test_quick_run_prints_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_tools.py"), "--quick", "--synthetic", "60",
         "--cp-files", "50", "--workdir", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout[done.stdout.index("=== medians"):]
    for name, unit in ROWS:
        # workload, unit, pondfs, passthrough, host, ratio, pondfs ops, passthrough ops
        line = rf"^  {re.escape(name)} +{re.escape(unit)} +" + " +".join([NUMBER] * 6)
        match = re.search(line, table, re.MULTILINE)
        assert match, f"no table line for {name}:\n{table}"
    data = json.loads(out.read_text())
    assert [row["workload"] for row in data["medians"]] == [name for name, _ in ROWS]
    assert all(isinstance(row["ops"][kind], dict) for row in data["medians"]
               for kind in ("pondfs", "passthrough"))
    tar = data["medians"][0]
    assert tar["ops"]["pondfs"]["create"] == tar["ops"]["passthrough"]["create"] > 0
    mounts = Path("/proc/mounts").read_text()
    assert str(tmp_path) not in mounts
    assert list(tmp_path.iterdir()) == [out]  # the work directory is gone
