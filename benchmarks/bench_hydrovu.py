#!/usr/bin/env python3
"""HydroVu collection throughput (issue 5, point 7). Run by hand, not by the test suite.

    .venv/bin/python benchmarks/bench_hydrovu.py              # the four shared devices
    .venv/bin/python benchmarks/bench_hydrovu.py --data pondfs/demo --rounds 3

A fake HydroVu (``python -m pondfs.testing.fake_hydrovu``, its own process, as a real
service would be) serves the device archives. Each round, in this process:

* **plain**: a requests loop that gets a token and fetches every data page of every location
  from the floor (2000-01-01), following the cursors, and discards the bodies;
* **pond**: a fresh pond, the HydroVu resource applied, then one collection (the same pages,
  decoded, pivoted wide, appended as one series version per device, committed) timed from
  the start of the run to the end of its commit.

It prints rows/s for both (rows = wide rows the collector stored), and the ratio of their
medians; the target is pond/plain <= 1.5. The exit status is 1 when it is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from pondfs import collectors, pond, resources
from pondfs.kinds import KINDS

REPO = Path(__file__).resolve().parent.parent
SHARED = Path("/work/shared/data/hydrovu")
FLOOR = 946_684_800
TARGET = 1.5


def start_server(data: Path) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "pondfs.testing.fake_hydrovu", "--data", str(data),
         "--client-id", "bench", "--client-secret", "bench-secret"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def plain(base_url: str) -> int:
    """Fetch every data page and throw it away; the number of pages."""
    session = requests.Session()
    token = session.post(f"{base_url}/oauth/token", data={"grant_type": "client_credentials"},
                         auth=("bench", "bench-secret"), timeout=60).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    locations, cursor = [], ""
    while True:
        page = session.get(f"{base_url}/v1/locations/list", timeout=60,
                           headers={**auth, **({"X-ISI-Start-Page": cursor} if cursor else {})})
        locations += [loc["id"] for loc in page.json()]
        cursor = page.headers.get("X-ISI-Next-Page", "")
        if not cursor:
            break
    pages = 0
    for location in locations:
        url = f"{base_url}/v1/locations/{location}/data?startTime={FLOOR}"
        cursor = ""
        while True:
            headers = {**auth, **({"X-ISI-Start-Page": cursor} if cursor else {})}
            response = session.get(url, headers=headers, timeout=60)
            response.raise_for_status()
            pages += 1
            cursor = response.headers.get("X-ISI-Next-Page", "")
            if not cursor:
                break
    return pages


def collect(base_url: str, scratch: Path) -> tuple[float, int, int]:
    """(seconds, rows, pages) of one collection into a fresh pond."""
    location = scratch / "pond"
    shutil.rmtree(location, ignore_errors=True)
    pond.init(str(location))
    config = scratch / "hydrovu.yaml"
    config.write_text(
        "apiVersion: pondfs/v1\nkind: HydroVu\nname: hydrovu\nspec:\n"
        f"  base_url: {base_url}\n  client_id: ${{env:BENCH_ID}}\n"
        "  client_secret: ${env:BENCH_SECRET}\n")
    with pond.open_fs(str(location), write=True) as fs:
        loaded = resources.load([str(config)], KINDS)
        resources.apply(fs, loaded)
        fs.commit("apply")
    started = time.perf_counter()
    with pond.open_fs(str(location), write=True) as fs:
        report = collectors.run(fs, "/etc/hydrovu")
        fs.commit("run")
    seconds = time.perf_counter() - started
    if report.failures:
        sys.exit(f"bench: collection failed: {report.failures}")
    return seconds, report.rows, sum(s.pages for s in report.sources)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED if SHARED.is_dir()
                        else REPO / "pondfs" / "demo")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(BENCH_ID="bench", BENCH_SECRET="bench-secret")
    server, base_url = start_server(args.data)
    scratch = Path(tempfile.mkdtemp(prefix="bench-hydrovu-"))
    plain_s, pond_s = [], []
    try:
        plain(base_url)  # warm both sides once
        for _ in range(args.rounds):
            started = time.perf_counter()
            plain_pages = plain(base_url)
            plain_s.append(time.perf_counter() - started)
            seconds, rows, pages = collect(base_url, scratch)
            pond_s.append(seconds)
            assert pages == plain_pages, (pages, plain_pages)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    p, q = statistics.median(plain_s), statistics.median(pond_s)
    print(f"data: {args.data} ({rows} rows, {pages} data pages), {args.rounds} rounds")
    print(f"plain requests loop: {p:.3f} s median ({rows / p:,.0f} rows/s) "
          f"[{min(plain_s):.3f}..{max(plain_s):.3f}]")
    print(f"pond run (collect + commit): {q:.3f} s median ({rows / q:,.0f} rows/s) "
          f"[{min(pond_s):.3f}..{max(pond_s):.3f}]")
    ratio = q / p
    print(f"overhead pond/plain: {ratio:.2f}x (target <= {TARGET}x): "
          f"{'ok' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
