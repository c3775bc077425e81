"""Real tools on a pondfs mount, on the passthrough FUSE baseline and on the host disk,
measured in the same run (issue 17).

    .venv/bin/python benchmarks/bench_tools.py [--rounds 3] [--quick] [--json FILE]
        [--tarball PATH | --synthetic FILES] [--cp-files 10000] [--workdir DIR]

The input is a real source tarball: Django's sdist (fetched once with ``pip download`` into
~/.cache/pondfs-bench and reused), or ``--tarball``, or ``--synthetic N`` (a generated tree
of N small text files, no network). Each round runs every workload on each of the three
targets in turn (the order rotates per round), each target on a fresh store: a new pond
(mount.pondfs), a new host directory served by benchmarks/passthrough.py, a new host
directory used directly. The workloads, in order, on the tree the previous ones left:

- ``tar -xf`` of the tarball; ``git init && git add -A && git commit``;
- ``git status`` cold (a fresh mount) and warm (in a mount where it just ran);
- ``rsync -a`` of the host copy of the tree into the mount, ``rsync -anc`` of it back;
- ``find | xargs stat``, ``du -s``, ``grep -r`` of a word, ``rm -rf`` of the tree;
- ``cp -r`` of FILES 4 KiB files (files/s);
- write + fsync + close of a 2 KB file, p50 and p99 (ms); fsyncs/s of 1 and of 8 threads
  each writing and fsyncing 2 KB files in a loop.

Every workload has a mount of its own (the mounts are not timed): cold means the kernel's
FUSE caches and the daemon's are empty; the host page cache is left as it is for every
target. Before each unmount the pondfs daemon's peak RSS (VmHWM) is read; after it, the
FUSE requests each daemon served (the line both log at exit, :mod:`pondfs.fuse.stats`).
Prints medians over the rounds, ratios pondfs / passthrough (times: < 1 is faster; rates:
> 1 is faster) and the requests per kind of each workload. ``--quick``: 1 round, the first
300 files of the tarball, 300 files for ``cp -r``, shorter fsync runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import detail, header, run  # noqa: E402
from bench_fuse import mounted, peak_rss_mib  # noqa: E402

from pondfs import pond  # noqa: E402
from pondfs.fuse.stats import counts_in_log  # noqa: E402

DJANGO = "django==5.2.19"
CACHE = Path.home() / ".cache" / "pondfs-bench"
KINDS = ("pondfs", "passthrough", "host")
TREE = "tree"
#: Files of the tarball, and for cp -r, in a --quick run.
QUICK_FILES = 300
#: git as any user would run it, whoever owns the extracted files (tar as root keeps them).
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_COUNT": "3",
    "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*",
    "GIT_CONFIG_KEY_1": "user.name", "GIT_CONFIG_VALUE_1": "bench",
    "GIT_CONFIG_KEY_2": "user.email", "GIT_CONFIG_VALUE_2": "bench@example.org",
}
SMALL_FILE = os.urandom(2048)


@dataclass
class Settings:
    """What one run measures with."""

    tarball: Path
    source: Path  # the tarball extracted on the host: rsync's source
    small: Path  # the cp -r source
    cp_files: int
    word: str
    latency_files: int
    fsync_seconds: float


@dataclass
class Measure:
    """One workload on one target in one round: its figure, and for the FUSE targets the
    requests the daemon served and (pondfs) its peak RSS."""

    value: float
    ops: dict[str, int] | None = None
    rss_mib: float | None = None


@dataclass
class Session:
    """One mount (or the host directory) a workload runs in: ``root`` is where."""

    root: Path
    ops: dict[str, int] | None = None
    rss_mib: float | None = None


@dataclass
class Target:
    """A kind of target with its store for this round; ``session()`` mounts it afresh."""

    kind: str
    store: Path
    mountpoint: Path
    log: Path

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A fresh mount of the store (the host directory itself for ``host``); after it,
        the requests served and the daemon's peak RSS."""
        if self.kind == "host":
            yield Session(self.store)
            return
        start = self.log.stat().st_size if self.log.exists() else 0
        s = Session(self.mountpoint)
        with mounted(self.kind, self.store, self.mountpoint, self.log) as pid:
            yield s
            if self.kind == "pondfs":
                s.rss_mib = peak_rss_mib(pid)
        with open(self.log, "rb") as log:
            log.seek(start)
            lines = log.read().decode(errors="replace").splitlines()
        s.ops = counts_in_log(lines)
        for line in lines:  # a figure from a daemon that complained is worth a second look
            if " WARNING " in line or " ERROR " in line or "Traceback" in line:
                detail(f"{self.kind} daemon: {line}")
        if s.ops is None:
            raise RuntimeError(f"the {self.kind} daemon logged no request counts; see {self.log}")


def q(path: object) -> str:
    """``path`` quoted for the shell."""
    return shlex.quote(str(path))


def shell(command: str, cwd: Path) -> float:
    """Seconds ``sh -c command`` took in ``cwd`` (stdout captured to a file, not /dev/null,
    which grep would take for -q)."""
    return run(["sh", "-c", command], cwd=str(cwd), capture=True).seconds


def write_fsync(path: Path) -> float:
    """Seconds to create ``path``, write 2 KB, fsync and close it."""
    start = time.perf_counter()
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, SMALL_FILE)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def fsync_rate(root: Path, threads: int, seconds: float) -> float:
    """Write + fsync + close of new 2 KB files per second, ``threads`` threads in a loop
    for ``seconds``."""
    where = root / f"rate-{threads}"
    where.mkdir()
    done = [0] * threads
    deadline = time.perf_counter() + seconds

    def loop(k: int) -> None:
        while time.perf_counter() < deadline:
            write_fsync(where / f"t{k}-{done[k]:06}")
            done[k] += 1

    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - start)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value ``fraction`` of the way up ``sorted_values`` (nearest rank)."""
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


@dataclass
class Step:
    """One or more rows of the table measured together: (name, unit) of each row, and how
    a target measures them (a Measure per row). Units "files/s" and "/s" are rates."""

    rows: tuple[tuple[str, str], ...]
    measure: Callable[[Target, Settings], list[Measure]]


def command(make: Callable[[Settings], str]) -> Callable[[Target, Settings], list[Measure]]:
    """Time the shell command ``make(settings)`` in a fresh session, at its root."""

    def measure(target: Target, settings: Settings) -> list[Measure]:
        with target.session() as s:
            seconds = shell(make(settings), s.root)
        return [Measure(seconds, s.ops, s.rss_mib)]

    return measure


def git_status(target: Target, settings: Settings) -> list[Measure]:
    """``git status`` cold (a fresh session) and warm (a second session, where it ran once
    untimed: the requests of the warm run are that session's less the cold run's)."""
    status = f"cd {TREE} && git status"
    with target.session() as s:
        seconds = shell(status, s.root)
    cold = Measure(seconds, s.ops, s.rss_mib)
    with target.session() as s:
        shell(status, s.root)
        seconds = shell(status, s.root)
    warm = Measure(seconds, s.ops, s.rss_mib)
    if warm.ops is not None and cold.ops is not None:
        warm.ops = {k: v - cold.ops.get(k, 0) for k, v in warm.ops.items()
                    if v > cold.ops.get(k, 0)}
    return [cold, warm]


def cp_files(target: Target, settings: Settings) -> list[Measure]:
    """``cp -r`` of the small files: files per second."""
    with target.session() as s:
        seconds = shell(f"cp -r {q(settings.small)} small", s.root)
    return [Measure(settings.cp_files / seconds, s.ops, s.rss_mib)]


def fsync_latency(target: Target, settings: Settings) -> list[Measure]:
    """Milliseconds of a write + fsync + close of a new 2 KB file: p50 and p99."""
    with target.session() as s:
        (s.root / "latency").mkdir()
        values = sorted(write_fsync(s.root / "latency" / f"f{i:05}") * 1000
                        for i in range(settings.latency_files))
    return [Measure(percentile(values, f), s.ops, s.rss_mib) for f in (0.5, 0.99)]


def fsync_rates(target: Target, settings: Settings) -> list[Measure]:
    """fsyncs per second of 1 thread, then of 8 threads, each in a session of its own."""
    measures = []
    for threads in (1, 8):
        with target.session() as s:
            value = fsync_rate(s.root, threads, settings.fsync_seconds)
        measures.append(Measure(value, s.ops, s.rss_mib))
    return measures


STEPS = [
    Step((("tar -xf", "s"),), command(
        lambda s: f"mkdir {TREE} && tar -xf {q(s.tarball)} -C {TREE} --strip-components=1")),
    Step((("git init+add+commit", "s"),), command(
        lambda s: f"cd {TREE} && git init -q && git add -A && git commit -q -m x")),
    Step((("git status cold", "s"), ("git status warm", "s")), git_status),
    Step((("rsync -a in", "s"),), command(lambda s: f"rsync -a {q(s.source)}/ copy/")),
    Step((("rsync -anc back", "s"),), command(lambda s: f"rsync -anc copy/ {q(s.source)}/")),
    Step((("find | xargs stat", "s"),), command(
        lambda s: f"find {TREE} -print0 | xargs -0 stat")),
    Step((("du -s", "s"),), command(lambda s: f"du -s {TREE}")),
    Step((("grep -r", "s"),), command(lambda s: f"grep -r {q(s.word)} {TREE} | wc -l")),
    Step((("rm -rf", "s"),), command(lambda s: f"rm -rf {TREE}")),
    Step((("cp -r 4 KiB files", "files/s"),), cp_files),
    Step((("write+fsync 2 KB p50", "ms"), ("write+fsync 2 KB p99", "ms")), fsync_latency),
    Step((("fsyncs/s 1 thread", "/s"), ("fsyncs/s 8 threads", "/s")), fsync_rates),
]
#: Every row of the table: (name, unit).
ROWS = [row for step in STEPS for row in step.rows]


# ---------------------------------------------------------------- inputs

def django_tarball() -> Path:
    """Django's sdist, downloaded once into the cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    name = DJANGO.replace("==", "-")
    found = sorted(CACHE.glob(f"{name}.tar.gz"))
    if found:
        return found[0]
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                           ":all:", DJANGO, "-d", str(CACHE)], capture_output=True, text=True)
    found = sorted(CACHE.glob(f"{name}.tar.gz"))
    if done.returncode != 0 or not found:
        sys.exit(f"bench_tools: could not download {DJANGO}: {done.stderr.strip()[-300:]}")
    return found[0]


def first_members(tarball: Path, count: int) -> Path:
    """A tarball of the first ``count`` members of ``tarball`` (made once, in the cache)."""
    cut = CACHE / f"{tarball.name.split('.tar')[0]}-first{count}.tar"
    if not cut.exists():
        partial = cut.with_suffix(".partial")
        with tarfile.open(tarball) as source, tarfile.open(partial, "w") as out:
            for i, member in enumerate(source):
                if i == count:
                    break
                out.addfile(member, source.extractfile(member) if member.isfile() else None)
        partial.rename(cut)
    return cut


def synthetic_tarball(work: Path, files: int) -> Path:
    """A tarball of a generated source-like tree: ``files`` text files in nested
    directories, a few symlinks and empty files."""
    root = work / "synthetic" / "synthetic-tree"
    for i in range(files):
        d = root / f"pkg{i % 10}" / f"mod{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        body = "".join(f"import module_{i}_{j}\nvalue_{j} = {i * j}\n" for j in range(i % 40))
        (d / f"file{i:05}.py").write_text(body)
    for i in range(min(10, files)):
        (root / f"link{i}").symlink_to(f"pkg{i % 10}")
    tarball = work / "synthetic.tar"
    subprocess.run(["tar", "-cf", str(tarball), "-C", str(root.parent), root.name], check=True)
    shutil.rmtree(root.parent)
    return tarball


def prepare(args: argparse.Namespace, work: Path) -> Settings:
    """The inputs every target gets: the tarball, its host copy, the cp -r source."""
    if args.synthetic:
        tarball = synthetic_tarball(work, args.synthetic)
    else:
        tarball = Path(args.tarball) if args.tarball else django_tarball()
        if not tarball.is_file():
            sys.exit(f"bench_tools: {tarball}: no such tarball")
        if args.quick:
            tarball = first_members(tarball, QUICK_FILES)
    source = work / "source"
    source.mkdir()
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(source), "--strip-components=1"],
                   check=True)
    small = work / "small.src"
    small.mkdir()
    for i in range(args.cp_files):
        (small / f"f{i:05}").write_bytes(os.urandom(4096))
    return Settings(tarball, source, small, args.cp_files, args.word,
                    latency_files=30 if args.quick else 500,
                    fsync_seconds=0.5 if args.quick else 5.0)


# ---------------------------------------------------------------- one round, the report

def new_target(kind: str, work: Path, round_: int) -> Target:
    """``kind``'s target with a fresh store for round ``round_``."""
    store = work / f"{kind}-{round_}"
    if kind == "pondfs":
        pond.init(str(store))
    else:
        store.mkdir()
    return Target(kind, store, work / f"mnt-{kind}", work / f"{kind}.log")


def one_round(kind: str, work: Path, round_: int, settings: Settings
              ) -> dict[str, Measure]:
    """Every step, in order, on a fresh store of ``kind``: a Measure per row."""
    target = new_target(kind, work, round_)
    results: dict[str, Measure] = {}
    try:
        for step in STEPS:
            for (name, unit), m in zip(step.rows, step.measure(target, settings), strict=True):
                results[name] = m
                rss = f", peak RSS {m.rss_mib:.0f} MiB" if m.rss_mib is not None else ""
                ops = f", {sum(m.ops.values())} requests" if m.ops is not None else ""
                detail(f"{kind:11} {name:22} {m.value:10.3f} {unit}{ops}{rss}")
    finally:
        shutil.rmtree(target.store, ignore_errors=True)
    return results


def median_ops(measures: list[Measure]) -> dict[str, int] | None:
    """The median count of each kind of request over the rounds."""
    if any(m.ops is None for m in measures):
        return None
    keys = {k for m in measures for k in m.ops or {}}
    counts = {k: int(statistics.median((m.ops or {}).get(k, 0) for m in measures))
              for k in keys}
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclass
class Row:
    """The medians of one workload over the rounds."""

    name: str
    unit: str
    values: dict[str, float]
    ops: dict[str, dict[str, int] | None] = field(default_factory=dict)
    peak_rss_mib: float | None = None

    @property
    def ratio(self) -> float:
        """pondfs / passthrough."""
        return self.values["pondfs"] / self.values["passthrough"]


def summarize(results: dict[str, list[dict[str, Measure]]]) -> list[Row]:
    """A row per workload: medians of each target's figures and requests, and the largest
    peak RSS of the pondfs daemon over the rounds."""
    rows = []
    for name, unit in ROWS:
        measures = {kind: [r[name] for r in results[kind]] for kind in KINDS}
        rss = [m.rss_mib for m in measures["pondfs"] if m.rss_mib is not None]
        rows.append(Row(name, unit, {kind: statistics.median(m.value for m in measures[kind])
                            for kind in KINDS},
                        {kind: median_ops(measures[kind]) for kind in KINDS[:2]},
                        max(rss) if rss else None))
    return rows


def print_table(rows: list[Row], rounds: int) -> None:
    """The table of medians, then the requests of each kind per workload."""
    header(f"medians of {rounds} round(s); ratio = pondfs / passthrough (times and ms: "
           "< 1 is faster; files/s and /s: > 1 is faster); ops = FUSE requests served")
    table = [("workload", "unit", "pondfs", "passthrough", "host", "ratio", "pondfs ops",
              "passthrough ops", "pondfs peak RSS MiB")]
    for r in rows:
        pond_ops, pt_ops = (sum(o.values()) if o else 0 for o in (r.ops["pondfs"],
                                                                    r.ops["passthrough"]))
        table.append((r.name, r.unit, *(f"{r.values[k]:.3f}" for k in KINDS),
                      f"{r.ratio:.2f}", str(pond_ops), str(pt_ops),
                      "" if r.peak_rss_mib is None else f"{r.peak_rss_mib:.0f}"))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for i, line in enumerate(table):
        cells = [c.ljust(w) if j < 2 else c.rjust(w)
                 for j, (c, w) in enumerate(zip(line, widths, strict=True))]
        print("  " + "  ".join(cells).rstrip())
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    header("FUSE requests per workload (median over the rounds)")
    for r in rows:
        for kind in KINDS[:2]:
            ops = r.ops[kind] or {}
            print(f"  {r.name:22} {kind:11} "
                  + " ".join(f"{k}={v}" for k, v in ops.items()))


def main() -> None:
    """Parse the arguments, prepare the inputs, run the rounds, print (and save) results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3; --quick 1)")
    parser.add_argument("--quick", action="store_true",
                        help="1 round, smaller inputs: checks the benchmark runs end to end")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--tarball", help=f"the source tarball (default: {DJANGO}'s sdist)")
    source.add_argument("--synthetic", type=int, metavar="FILES",
                        help="a generated tree of FILES small files instead of a tarball")
    parser.add_argument("--cp-files", type=int, default=None,
                        help=f"4 KiB files for cp -r (default 10000; --quick {QUICK_FILES})")
    parser.add_argument("--word", default="import", help="what grep -r looks for")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--workdir", default=None, help="scratch directory on local disk")
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.cp_files = args.cp_files or (QUICK_FILES if args.quick else 10_000)
    if args.rounds < 1 or args.cp_files < 1 or (args.synthetic is not None
                                                and args.synthetic < 1):
        parser.error("--rounds, --cp-files and --synthetic need a positive number")
    for tool in ("tar", "git", "rsync", "fusermount3"):
        if shutil.which(tool) is None:
            sys.exit(f"bench_tools: {tool} is not installed")
    work = Path(tempfile.mkdtemp(prefix="pondfs-tools-", dir=args.workdir or "/var/tmp"))
    try:
        os.environ.update(GIT_ENV)
        settings = prepare(args, work)
        header(f"input {settings.tarball.name}: "
               f"{sum(1 for _ in settings.source.rglob('*'))} entries; work dir {work}")
        results: dict[str, list[dict[str, Measure]]] = {kind: [] for kind in KINDS}
        for round_ in range(args.rounds):
            header(f"round {round_ + 1}/{args.rounds}")
            order = KINDS[round_ % 3:] + KINDS[:round_ % 3]
            for kind in order:
                results[kind].append(one_round(kind, work, round_, settings))
        rows = summarize(results)
        print_table(rows, args.rounds)
        if args.json:
            write_json(Path(args.json), args, rows, results)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"bench_tools: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_json(path: Path, args: argparse.Namespace, rows: list[Row],
               results: dict[str, list[dict[str, Measure]]]) -> None:
    """The medians and every round's figures, as JSON."""
    data = {
        "arguments": {k: v for k, v in vars(args).items() if k != "json"},
        "medians": [{"workload": r.name, "unit": r.unit, **r.values,
                     "ratio": r.ratio, "ops": r.ops, "pondfs_peak_rss_mib": r.peak_rss_mib}
                    for r in rows],
        "rounds": {kind: [{name: m.value for name, m in rnd.items()} for rnd in rounds]
                   for kind, rounds in results.items()},
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
