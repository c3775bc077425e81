#!/usr/bin/env python3
"""Site build from the mount vs from a plain copy (issue 7, point 5). Run by hand.

    .venv/bin/python benchmarks/bench_site.py                     # the demo sample
    .venv/bin/python benchmarks/bench_site.py --data /work/shared/data/hydrovu --rounds 3

A pond gets one series per device (``pond cp --format series`` of the data directory's
``*.parquet``), the page templates and ``site/pond-site.yaml`` (temporal-reduce, template),
and is mounted once, read-only as of its newest transaction (as ``pond site build`` mounts).
Its ``/reduce`` and ``/site`` are copied out of the mount to the host disk (which also
computes and caches every derived file). Then, alternating within each round, the same
``pond site build OUT --from DIR`` runs over:

* **mount**: the read-only mount (Framework walks, stats and reads through FUSE);
* **host**: the plain copy of the same files.

The target is mount/host <= 1.2 on the medians; the exit status is 1 when it is missed.
For information it also times ``pond site build OUT`` end to end (mount, build, unmount),
and checks that both outputs hold the same pages and data files (by content hash).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from _common import Summary, detail, header, median, pond, run, scratch, spread

from pondfs import site

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "site"
TARGET = 1.2


def make_pond(location: Path, data: Path) -> int:
    """A pond with every ``data/*.parquet`` as a series and the site's resources; the
    number of devices."""
    files = sorted(data.glob("*.parquet"))
    if not files:
        sys.exit(f"bench_site: no *.parquet in {data}")
    pond(str(location), "init")
    pond(str(location), "mkdir", "-p", *[f"/hydrovu/devices/{i}" for i in range(len(files))],
         "/site/templates")
    for i, path in enumerate(files):
        pond(str(location), "cp", "--format", "series", str(path),
             f"/hydrovu/devices/{i}/{path.stem.removesuffix('.series')}.series")
    pond(str(location), "cp", *map(str, sorted((PROJECT / "templates").glob("*.md.j2"))),
         "/site/templates/")
    pond(str(location), "apply", "-f", str(PROJECT / "pond-site.yaml"))
    return len(files)


def build_from(tree: Path, out: Path) -> float:
    return run([sys.executable, "-m", "pondfs.cli", "site", "build", str(out), "--from",
                str(tree)]).seconds


def listing(out: Path) -> list[str]:
    """The output's pages and data files (data names carry a content hash)."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if p.suffix in (".html", ".parquet"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "pondfs" / "demo",
                        help="a directory of device *.parquet files (default pondfs/demo)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    site.install(PROJECT)
    summary = Summary()
    with scratch("site", args.keep) as work:
        location = work / "pond"
        devices = make_pond(location, args.data)
        mountpoint = work / "mnt"
        mountpoint.mkdir()
        # As pond site build mounts: read-only, as of one transaction.
        txn = site._newest_transaction(str(location))
        run([sys.executable, "-m", "pondfs.mount", str(location), str(mountpoint), "-o",
             f"ro,at={txn}"])
        try:
            header(f"copying /reduce and /site ({devices} devices) out of the mount")
            copy = work / "copy"
            copy.mkdir()
            seconds = run(["cp", "-r", str(mountpoint / "reduce"), str(mountpoint / "site"),
                           str(copy)]).seconds
            detail(f"cp -r (computes every derived file once): {seconds:.1f} s")
            header("warm-up build from each (Framework's first build in a project is slower)")
            detail(f"mount {build_from(mountpoint, work / 'out-mount'):.1f} s, "
                   f"host {build_from(copy, work / 'out-host'):.1f} s")
            times: dict[str, list[float]] = {"mount": [], "host": []}
            for n in range(args.rounds):
                header(f"round {n + 1} of {args.rounds}")
                for name, tree in (("mount", mountpoint), ("host", copy)):
                    seconds = build_from(tree, work / f"out-{name}")
                    times[name].append(seconds)
                    detail(f"{name}: {seconds:.1f} s")
        finally:
            subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
        same = listing(work / "out-mount") == listing(work / "out-host")
        header("pond site build end to end (mount, build, unmount)")
        whole = run([sys.executable, "-m", "pondfs.cli", "--pond", str(location), "site",
                     "build", str(work / "out-pond")]).seconds
        detail(f"{whole:.1f} s")
        header("results")
        for name, values in times.items():
            detail(f"{name}: {spread(values)}")
        ratio = median(times["mount"]) / median(times["host"])
        pages = sum(1 for p in listing(work / "out-host") if p.endswith(".html"))
        summary.add(f"site build, {pages} pages: mount / host copy",
                    f"{median(times['mount']):.1f} s / {median(times['host']):.1f} s = "
                    f"{ratio:.2f}x", f"<= {TARGET}x", ratio <= TARGET)
        summary.add("same pages and data files (hashes) from both", str(same), "True", same)
        summary.add("pond site build end to end", f"{whole:.1f} s", "", None)
    summary.print()
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
