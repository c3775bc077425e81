"""Derive the demo sample in ``pondfs/demo/`` from the full HydroVu device archives.

The full archives (about 4.5 MB, 20 months of hourly readings from four devices) are too big to
ship in the package, so the demo and the fake HydroVu server's default data set use a small
slice of each: the last ``--days`` days of the device's own record, plus every near-epoch
clock-glitch row (timestamp before 2000-01-01), which is kept on purpose so the demo shows the
collector dropping them.

Column names, column order and types are copied unchanged (``timestamp`` int64 not null, one
nullable float64 ``<Parameter>.<Unit>`` column per parameter, even if it is all null in the
slice). Each output is named for its device: ``NoyoCenterAT500_1_archive_20260209.series.parquet``
becomes ``NoyoCenterAT500_1.parquet``. Output is zstd-compressed and deterministic for a given
pyarrow version.

Reproduce the committed sample (about 330 KB) from the repository root::

    /work/venv/bin/python scripts/make_demo_sample.py --source /work/shared/data/hydrovu
    du -cb pondfs/demo/*.parquet
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

#: Readings before this instant (2000-01-01T00:00:00Z) come from devices with a reset clock.
CLOCK_GLITCH_BEFORE = 946_684_800

_ARCHIVE_SUFFIX = re.compile(r"(_archive_\d+)?(\.series)?\.parquet$")


def device_name(archive: Path) -> str:
    """The device name an archive file is named for (``X_archive_20260209.series.parquet`` -> X)."""
    return _ARCHIVE_SUFFIX.sub("", archive.name)


def make_sample(archive: Path, dest_dir: Path, days: int) -> Path:
    """Write the demo slice of one archive into ``dest_dir``; return the file written."""
    table = pq.read_table(archive)
    timestamps = table.column("timestamp")
    last = pc.max(timestamps).as_py()
    keep = pc.or_(
        pc.less(timestamps, CLOCK_GLITCH_BEFORE),
        pc.greater(timestamps, last - days * 86_400),
    )
    sample = table.filter(keep)
    out = dest_dir / f"{device_name(archive)}.parquet"
    pq.write_table(sample, out, compression="zstd")
    log.info("%s: %d of %d rows -> %s", archive.name, sample.num_rows, table.num_rows, out)
    return out


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="directory of full archives")
    parser.add_argument(
        "--dest",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "pondfs" / "demo",
        help="output directory (default: pondfs/demo in this repository)",
    )
    parser.add_argument("--days", type=int, default=60, help="days kept from each device's end")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    archives = sorted(args.source.glob("*.parquet"))
    if not archives:
        parser.error(f"no .parquet files in {args.source}")
    args.dest.mkdir(parents=True, exist_ok=True)
    total = sum(make_sample(a, args.dest, args.days).stat().st_size for a in archives)
    log.info("total %d bytes in %d files", total, len(archives))


if __name__ == "__main__":
    main()
