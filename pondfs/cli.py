"""The ``pond`` command: a versioned filesystem from the shell.

Every command that changes the pond is one transaction: it commits whole at the end or
leaves the pond exactly as it was. Errors print one line on stderr and exit non-zero.

Start-up time is most of a small command's time, so modules only some commands need
(DataFusion for ``query``, YAML resources and collectors, tqdm for a terminal's progress
bars, boto3 for backups) are imported by those commands.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import stat as st
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from . import __version__, pond
from .tinyfs import DATA, DIRECTORY, FS, SERIES, SYMLINK, TABLE, FsError, formats
from .tinyfs.check import Checker
from .tinyfs.fs import join_path

log = logging.getLogger("pondfs.cli")

POND_PREFIX = "pond:"
HOST_PREFIX = "host:"

CP_HELP = """\
Copy files between the host and the pond, as one transaction.

Which side a path is on: a path written pond:/x is in the pond and host:x on the host.
Without a prefix, the sources are host paths and the destination is a pond path (copying
in); once any source says pond:, the copy goes out and an unprefixed destination is a host
path. Copying within the pond is not supported (use pond mv).

Formats (--format): data (raw bytes), table (one Parquet table) or series (each copy
appends a version; CSV input is converted to Parquet). Without --format a copy into an
existing file keeps its format; a new file is data. A series read out is one Parquet file.

When a copy in returns, its transaction is committed: every later reader sees all of it,
and a crash of any process after that cannot undo it. Like cp, it does not wait for the
disk: run sync(1) after it if it must survive a power loss or an operating-system crash
(until then the pond may come back without that transaction, or fail pond check on it).
"""


def _progress(total: int | None, unit: str, desc: str) -> Any:
    """A progress bar on stderr, shown only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=unit == "B", desc=desc, file=sys.stderr,
                leave=False)


class _NoProgress:
    """A progress bar that shows nothing (stderr is no terminal)."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None


@contextmanager
def _writing(args: argparse.Namespace) -> Iterator[FS]:
    """A writable view for one command; commits if the command finishes without error."""
    command = "pond " + " ".join(args.argv)
    # Only cp takes --at (to copy out of the past); copying in as of it is refused.
    with pond.open_fs(args.location, write=True, at=getattr(args, "at", None),
                      holder=command) as fs:
        yield fs
        with _ignoring_ctrl_c():
            args.txn = fs.commit(command)


@contextmanager
def _ignoring_ctrl_c() -> Iterator[None]:
    """Ctrl-C is ignored while a commit is under way: once its Delta log entry is written the
    transaction stands, so an interrupt then must not report that nothing was committed."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _reading(args: argparse.Namespace) -> FS:
    return pond.open_fs(args.location, at=getattr(args, "at", None))


# ---------------------------------------------------------------------- init, mkdir, ls

def cmd_init(args: argparse.Namespace) -> int:
    txn = pond.init(args.location)
    print(f"initialized pond at {args.location} (transaction {txn})")
    return 0


def cmd_mkdir(args: argparse.Namespace) -> int:
    with _writing(args) as fs:
        for path in args.paths:
            if args.parents:
                _makedirs(fs, path)
            else:
                dir_id, name = fs.resolve_parent(path)
                fs.mkdir(dir_id, name, mode=0o777 & ~_umask(), uid=os.getuid(), gid=os.getgid())
    return 0


def _entry(fs: FS, path: str) -> tuple[str, str]:
    """The directory and name of the entry ``path`` names. As in POSIX, a trailing slash
    says the entry is a directory: ``mv f new/`` must not rename ``f`` to ``new``."""
    dir_id, name = fs.resolve_parent(path)
    if path.endswith("/"):
        node_id = fs.lookup(dir_id, name)
        if node_id is None or fs.kind(fs.resolve(path)) != DIRECTORY:
            raise FsError(errno.ENOTDIR, f"not a directory: {path}")
    return dir_id, name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _makedirs(fs: FS, path: str) -> str:
    dir_id = fs.resolve("/")
    walked = ""
    for part in path.split("/"):
        if not part or part == ".":
            continue
        walked = join_path(walked, part)
        child = fs.lookup(dir_id, part) if part != ".." else fs.resolve(walked)
        if child is None:
            child = fs.mkdir(dir_id, part, mode=0o777 & ~_umask(), uid=os.getuid(),
                             gid=os.getgid())
        elif fs.kind(fs.resolve(walked)) != DIRECTORY:
            raise FsError(errno.ENOTDIR, f"not a directory: {walked}")
        else:
            child = fs.resolve(walked)
        dir_id = child
    return dir_id


def _mode_string(mode: int) -> str:
    return st.filemode(mode)


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _ls_line(fs: FS, node_id: str, name: str) -> str:
    s = fs.stat(node_id)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.mtime_ns / 1e9))
    target = f" -> {fs.readlink(node_id)}" if s.kind == SYMLINK else ""
    fmt = s.format or ("dynamic" if s.dynamic else "-")
    return (f"{_mode_string(s.mode)} {s.nlink:>3} {_user(s.uid):<8} {_group(s.gid):<8} "
            f"{s.size:>10} {when} v{s.version:<4} {fmt:<7} {name}{target}")


def cmd_ls(args: argparse.Namespace) -> int:
    """As ``ls``: files and glob matches first, then each directory's entries (under a
    ``PATH:`` header when several paths are listed), so no file reads as a directory's."""
    paths = args.paths or ["/"]
    with _reading(args) as fs:
        files: list[tuple[str, str]] = []
        dirs: list[tuple[str, str]] = []
        for path in paths:
            if any(c in path for c in "*?[{"):
                matches = [(p, node_id) for p, node_id, _ in fs.glob(path)]
                if not matches:
                    raise FsError(errno.ENOENT, f"no match for {path}")
                files.extend(matches)
            else:
                node_id = fs.resolve(path, follow=False)
                (dirs if fs.kind(node_id) == DIRECTORY else files).append((path, node_id))

        def lines(entries: list[tuple[str, str]]) -> list[str]:
            return [_ls_line(fs, node_id, name) if args.long else name
                    for name, node_id in entries]

        blocks = [lines(files)] if files else []
        for path, node_id in dirs:
            header = [f"{path}:"] if len(paths) > 1 else []
            blocks.append(header + lines(sorted(fs.listdir(node_id).items())))
        text = "\n\n".join("\n".join(block) for block in blocks)
        if text:
            print(text)
    return 0


# ---------------------------------------------------------------------- cat, stat

def cmd_cat(args: argparse.Namespace) -> int:
    sys.stdout.flush()
    with _reading(args) as fs:
        for path in args.paths:
            node_id = fs.resolve(path)
            if fs.kind(node_id) == DIRECTORY:
                raise FsError(errno.EISDIR, f"is a directory: {path}")
            fs.copy_to(node_id, sys.stdout.fileno())
    return 0


def cmd_stat(args: argparse.Namespace) -> int:
    with _reading(args) as fs:
        for path in args.paths:
            node_id = fs.resolve(path, follow=False)
            s = fs.stat(node_id)
            print(f"  path: {path}")
            print(f"  node: {s.node_id}  version: {s.version}  transaction: {s.txn}")
            print(f"  kind: {s.kind}  format: {s.format or '-'}"
                  f"{'  (computed)' if s.dynamic else ''}")
            print(f"  size: {s.size}  mode: {s.mode & 0o7777:04o} ({_mode_string(s.mode)})"
                  f"  links: {s.nlink}  uid: {s.uid}  gid: {s.gid}")
            for label, ns in (("access", s.atime_ns), ("modify", s.mtime_ns),
                              ("change", s.ctime_ns)):
                print(f"{label:>6}: {_iso(ns)}")
            if not s.dynamic and s.kind != DIRECTORY:
                v = fs.get(node_id)
                print(f"blake3: {v.blake3}  stored: {'inline' if v.inline else 'object'}")
                if v.format == SERIES:
                    print(f"  time column: {v.time_column}  versions: {v.version}")
    return 0


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns // 1_000_000_000)) + \
        f".{ns % 1_000_000_000:09d}"


# ---------------------------------------------------------------------- cp

def _split_side(path: str) -> tuple[str | None, str]:
    if path.startswith(POND_PREFIX):
        return "pond", path[len(POND_PREFIX):] or "/"
    if path.startswith(HOST_PREFIX):
        return "host", path[len(HOST_PREFIX):]
    return None, path


def cmd_cp(args: argparse.Namespace) -> int:
    sources = [_split_side(p) for p in args.sources]
    dest_side, dest = _split_side(args.dest)
    outward = any(side == "pond" for side, _ in sources)
    if outward:
        if any(side != "pond" for side, _ in sources) or dest_side == "pond":
            raise FsError(errno.EINVAL, "copy within the pond, or from both sides at "
                          "once, is not supported (see pond cp --help)")
        with _reading(args) as fs:
            _copy_out(fs, [p for _, p in sources], dest, args.recursive)
        return 0
    if dest_side == "host" or any(side == "pond" for side, _ in sources):
        raise FsError(errno.EINVAL, "one side must be the pond (see pond cp --help)")
    host_sources = [p for _, p in sources]
    for src in host_sources:
        # As in cp, a symlink named as a source is followed unless copying recursively.
        if not (os.path.lexists(src) if args.recursive else os.path.exists(src)):
            raise FsError(errno.ENOENT, f"{src}: no such file or directory")
        if os.path.isdir(src) and not args.recursive:
            raise FsError(errno.EISDIR, f"{src}: is a directory (use -r)")
    with _writing(args) as fs:
        copier = _CopyIn(fs, args.format, args.time_column)
        copier.run(host_sources, dest, follow=not args.recursive)
    return 0


class _CopyIn:
    """Copies host files and trees into one pond transaction, with a progress bar."""

    def __init__(self, fs: FS, fmt: str | None, time_column: str | None):
        self.fs = fs
        self.fmt = fmt
        self.time_column = time_column
        self.uid, self.gid = os.getuid(), os.getgid()

    def run(self, sources: list[str], dest: str, *, follow: bool) -> None:
        """Copy every source to ``dest`` (into it when it is a directory); ``follow``
        copies what a source that is a symlink points to, not the link."""
        total = sum(_tree_size(os.path.realpath(s) if follow else s) for s in sources)
        dest_id = self._existing(dest)
        into_dir = dest_id is not None and self.fs.kind(dest_id) == DIRECTORY
        if len(sources) > 1 and not into_dir:
            raise FsError(errno.ENOTDIR, f"target {dest} is not a directory")
        with _progress(total, "B", "copy") as bar:
            self.bar = bar
            for src in sources:
                if into_dir:
                    assert dest_id is not None
                    self._copy(src, dest_id, os.path.basename(os.path.normpath(src)),
                               follow=follow)
                else:
                    dir_id, name = _entry(self.fs, dest)
                    self._copy(src, dir_id, name, follow=follow)

    def _existing(self, path: str) -> str | None:
        try:
            return self.fs.resolve(path)
        except FsError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def _copy(self, src: str, dir_id: str, name: str, *, follow: bool = False) -> None:
        if os.path.islink(src) and not follow:
            existing = self.fs.lookup(dir_id, name)
            if existing is not None:
                self.fs.unlink(dir_id, name)
            self.fs.symlink(dir_id, name, os.readlink(src), self.uid, self.gid)
        elif os.path.isdir(src):
            child = self.fs.lookup(dir_id, name)
            if child is None:
                child = self.fs.mkdir(dir_id, name, st.S_IMODE(os.stat(src).st_mode),
                                      self.uid, self.gid)
            elif self.fs.kind(child) != DIRECTORY:
                raise FsError(errno.ENOTDIR, f"cannot overwrite non-directory {name} "
                              f"with directory {src}")
            for entry in sorted(os.listdir(src)):
                self._copy(os.path.join(src, entry), child, entry)
        elif os.path.isfile(src):
            self._copy_file(src, dir_id, name)
        else:  # reading a FIFO would wait for a writer forever
            raise FsError(errno.EINVAL, f"{src}: not a regular file, directory or "
                          "symbolic link")

    def _copy_file(self, src: str, dir_id: str, name: str) -> None:
        node_id = self.fs.lookup(dir_id, name)
        fmt = self.fmt
        if node_id is not None:
            existing = self.fs.get(node_id)
            if existing.kind == DIRECTORY:
                raise FsError(errno.EISDIR, f"cannot overwrite directory {name} with a file")
            fmt = fmt or existing.format
            if existing.format != fmt:
                raise FsError(errno.EINVAL, f"{name} is a {existing.format} file; "
                              f"cannot write {fmt} into it")
        fmt = fmt or DATA
        table = _read_input_table(src) if fmt in (TABLE, SERIES) else None
        if node_id is None:
            mode = st.S_IMODE(os.stat(src).st_mode)
            node_id = self.fs.create(dir_id, name, fmt, mode, self.uid, self.gid)
        if table is None:
            with open(src, "rb", buffering=0) as f:
                self.fs.write_file(node_id, f.fileno(), self.bar.update)
            return
        if fmt == TABLE:
            self.fs.write_table(node_id, table)
        else:
            self.fs.append_series(node_id, table, self.time_column)
        self.bar.update(os.path.getsize(src))


def _tree_size(path: str) -> int:
    if os.path.islink(path):
        return 0
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
               for f in files if not os.path.islink(os.path.join(d, f)))


def _read_input_table(src: str) -> pa.Table:
    if src.lower().endswith(".csv"):
        with open(src, "rb") as f:
            return formats.read_csv(f, src)
    with open(src, "rb") as f:
        return formats.read_parquet(f, src)


def _copy_out(fs: FS, sources: list[str], dest: str, recursive: bool) -> None:
    into_dir = os.path.isdir(dest)
    if len(sources) > 1 and not into_dir:
        raise FsError(errno.ENOTDIR, f"target {dest} is not a directory")
    plan: list[tuple[str, str, str]] = []
    for src in sources:
        node_id = fs.resolve(src)
        target = os.path.join(dest, os.path.basename(src.rstrip("/")) or "pond") \
            if into_dir else dest
        if fs.kind(node_id) == DIRECTORY:
            if not recursive:
                raise FsError(errno.EISDIR, f"{src}: is a directory (use -r)")
            plan.extend(_pond_tree(fs, node_id, target))
        else:
            plan.append((node_id, target, "file"))
    with _progress(len(plan), "file", "copy") as bar:
        for node_id, target, kind in plan:
            if kind == "dir":
                os.makedirs(target, exist_ok=True)
            elif kind == "link":
                _host_symlink(fs.readlink(node_id), target)
            else:
                with open(target, "wb") as out:
                    fs.copy_to(node_id, out.fileno())
            bar.update(1)


def _host_symlink(text: str, path: str) -> None:
    """Make ``path`` a symlink to ``text``, replacing a file or symlink there (as copying
    in does), never a directory."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    os.symlink(text, path)


def _pond_tree(fs: FS, dir_id: str, target: str) -> Iterator[tuple[str, str, str]]:
    yield dir_id, target, "dir"
    for name, child in sorted(fs.listdir(dir_id).items()):
        kind = fs.kind(child)
        path = os.path.join(target, name)
        if kind == DIRECTORY:
            yield from _pond_tree(fs, child, path)
        else:
            yield child, path, "link" if kind == SYMLINK else "file"


# ---------------------------------------------------------------------- rm, mv, ln

def cmd_rm(args: argparse.Namespace) -> int:
    with _writing(args) as fs:
        for path in args.paths:
            try:
                dir_id, name = _entry(fs, path)
                node_id = fs.lookup(dir_id, name)
                if node_id is None:
                    raise FsError(errno.ENOENT, f"{path}: no such file or directory")
            except FsError as exc:
                if args.force and exc.errno == errno.ENOENT:
                    continue
                raise
            if fs.kind(node_id) == DIRECTORY and fs.stat(node_id).dynamic is False and \
                    fs.get(node_id).kind == DIRECTORY:
                if not args.recursive:
                    raise FsError(errno.EISDIR, f"{path}: is a directory (use -r)")
                _remove_tree(fs, node_id)
                fs.rmdir(dir_id, name)
            else:
                fs.unlink(dir_id, name)
    return 0


def _remove_tree(fs: FS, dir_id: str) -> None:
    for name, op in sorted(fs.entries(dir_id).items()):
        if op.kind == DIRECTORY:
            _remove_tree(fs, op.node_id)
            fs.rmdir(dir_id, name)
        else:
            fs.unlink(dir_id, name)


def cmd_mv(args: argparse.Namespace) -> int:
    with _writing(args) as fs:
        src_dir, src_name = _entry(fs, args.source)
        if fs.lookup(src_dir, src_name) is None:
            raise FsError(errno.ENOENT, f"{args.source}: no such file or directory")
        try:
            target = fs.resolve(args.dest)
        except FsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            target = None
        if target is not None and fs.kind(target) == DIRECTORY:
            dst_dir, dst_name = target, src_name
        else:
            dst_dir, dst_name = _entry(fs, args.dest)
        fs.rename(src_dir, src_name, dst_dir, dst_name)
    return 0


def cmd_ln(args: argparse.Namespace) -> int:
    if not args.symbolic:
        raise FsError(errno.EPERM, "hard links are not supported; use ln -s")
    with _writing(args) as fs:
        dir_id, name = _entry(fs, args.link)
        fs.symlink(dir_id, name, args.target, os.getuid(), os.getgid())
    return 0


# ---------------------------------------------------------------------- history

def cmd_log(args: argparse.Namespace) -> int:
    with _reading(args) as fs:
        if args.path is None:
            rows = [{"txn": t.txn, "time": _iso(t.timestamp_ns)[:19], "user": t.user,
                     "rows": t.rows, "command": t.command} for t in fs.transactions()]
        else:
            node_id = fs.resolve(args.path, follow=False)
            rows = [{"version": v.version, "txn": v.txn, "time": _iso(v.timestamp_ns)[:19],
                     "kind": v.kind, "format": v.format, "size": v.size,
                     "blake3": v.blake3[:12], "min_time": v.min_time, "max_time": v.max_time,
                     "removed": v.deleted}
                    for v in reversed(fs.versions(node_id))]
        if args.limit is not None:
            rows = rows[: args.limit]
        _print_table(pa.Table.from_pylist(rows) if rows else pa.table({}), args.output)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .query import oplog_table

    with _reading(args) as fs:
        table = oplog_table(fs)
        if args.path is not None:
            node_id = fs.resolve(args.path, follow=False)
            table = table.filter(pa.compute.equal(table.column("node_id"), node_id))
        table = table.sort_by([("txn", "ascending"), ("node_id", "ascending"),
                               ("version", "ascending")])
        _print_table(table, args.output)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from .query import run_query

    with _reading(args) as fs:
        _print_table(run_query(fs, args.sql), args.output)
    return 0


def _print_table(table: pa.Table, output: str) -> None:
    import pyarrow.csv as pacsv

    from .query import format_json, format_table

    if output == "csv":
        pacsv.write_csv(table, sys.stdout.buffer)
    elif output == "json":
        print(format_json(table))
    elif table.num_columns:
        print(format_table(table))


# ---------------------------------------------------------------------- check, maintain

def cmd_check(args: argparse.Namespace) -> int:
    with _reading(args) as fs, _progress(None, "version", "check") as bar:
        report = Checker(fs, verify_content=not args.quick,
                         progress=lambda n: bar.update(1)).run()
    for problem in report.problems:
        print(f"problem: {problem}")
    for note in report.notes:
        print(f"note: {note}")
    state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"pond check: {report.nodes} nodes, {report.versions} versions: {state}")
    return 0 if report.ok else 1


def cmd_maintain(args: argparse.Namespace) -> int:
    report = pond.maintain(args.location, retention_hours=args.retention_hours,
                           holder="pond maintain")
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0


# ---------------------------------------------------------------------- backup, restore

BACKUP_HELP = """\
Back up the pond to S3 (s3://bucket/prefix); list, verify and thin out backups.

  push    upload what the bucket lacks (data first, the log last), then a manifest of the
          pond as of its newest transaction: a restore point. Interrupted pushes resume;
          multipart uploads a killed push left are aborted once idle for longer than
          --abort-uploads-after (default 1h: livelier ones may be another push's).
  list    the restore points: transactions, their times, files and sizes
  verify  every file of every restore point (of --at TXN only) is there with its size and
          BLAKE3 hash (each is downloaded); exit 1 on any problem
  forget  delete the restore points not kept by --keep-last N and/or --keep-within
          DURATION (of the newest; the newest is always kept), then every file no kept
          point needs; --dry-run lists what would go and deletes nothing

push and forget take the backup's lock (backup.lock below the prefix): one at a time, and
never a forget while a push runs. Endpoint, region and credentials come from the usual AWS
settings (environment, profile, AWS_ENDPOINT_URL). Restore with pond restore URL DIR.
"""

#: The options of pond backup that only some actions take.
_BACKUP_OPTIONS = {"quick": "verify", "at": "verify", "keep_last": "forget",
                   "keep_within": "forget", "dry_run": "forget",
                   "abort_uploads_after": "push"}


def cmd_backup(args: argparse.Namespace) -> int:
    """pond backup push|list|verify|forget URL (see BACKUP_HELP)."""
    from . import backup  # boto3 is slow to import: only the S3 commands pay for it

    try:
        for option, action in _BACKUP_OPTIONS.items():
            if getattr(args, option) not in (None, False) and args.action != action:
                flag = "--" + option.replace("_", "-")
                raise FsError(errno.EINVAL, f"{flag} is an option of pond backup {action}")
        if args.action == "push":
            location = pond.pond_location(args.pond)
            after = (backup.ABORT_UPLOADS_AFTER if args.abort_uploads_after is None
                     else backup.parse_duration(args.abort_uploads_after))
            print(backup.push(location, args.url, jobs=args.jobs,
                              abort_uploads_after=after).describe())
            return 0
        if args.action == "list":
            points = backup.list_backups(args.url)
            print(f"{'txn':>6}  {'pond time':19}  {'pushed (UTC)':20}  {'files':>7}  "
                  f"{'size':>10}  {'uploaded':>10}")
            for p in points:
                print(f"{p.txn:>6}  {_iso(p.txn_time_ns)[:19]}  {p.pushed_at:20}  "
                      f"{p.files:>7}  {backup.human_bytes(p.bytes):>10}  "
                      f"{backup.human_bytes(p.uploaded_bytes):>10}")
            return 0
        if args.action == "forget":
            within = None if args.keep_within is None else backup.parse_duration(
                args.keep_within)
            result = backup.forget(args.url, keep_last=args.keep_last, keep_within=within,
                                   dry_run=args.dry_run, jobs=args.jobs)
            for relative in result.deleted if result.dry_run else ():
                print(f"would delete: {relative}")
            print(result.describe())
            return 0
        report = backup.verify(args.url, jobs=args.jobs, quick=args.quick, at=args.at)
        for problem in report.problems:
            print(f"problem: {problem}")
        print(report.describe())
        return 0 if report.ok else 1
    except FsError as exc:
        print(f"pond backup {args.action}: {exc}", file=sys.stderr)
        return 1


def cmd_restore(args: argparse.Namespace) -> int:
    from . import backup

    print(backup.restore(args.url, args.dir, at=args.at, jobs=args.jobs).describe())
    return 0


# ---------------------------------------------------------------------- resources, collectors

def cmd_apply(args: argparse.Namespace) -> int:
    from . import dynamic, resources
    from .dynamic import depends

    registry = pond.factories()
    loaded = resources.load(args.files, registry.validate, registry.names())
    with _writing(args) as fs:
        loaded, warnings = depends.order(fs, loaded)
        applied = resources.apply(fs, loaded, os.getuid(), os.getgid())
        dynamic.verify(fs, loaded)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for done in applied:
        print(f"{done.action:<9} {done.resource.path} ({done.resource.kind}, node "
              f"{done.node_id})")
    print(f"transaction {args.txn}" if args.txn else "nothing changed: no transaction")
    return 0


def cmd_mknod(args: argparse.Namespace) -> int:
    from . import dynamic, resources
    from .dynamic import depends

    try:
        with open(args.config, "rb") as f:
            config = resources.canonical(resources.parse_spec(f.read(), args.config))
    except OSError as exc:
        raise FsError(exc.errno or errno.EIO, f"{args.config}: {exc.strerror}") from None
    try:
        pond.factories().validate(args.kind, config)
    except FsError as exc:
        raise FsError(errno.EINVAL, f"{args.config}: {exc}") from None
    with _writing(args) as fs:
        one = resources.Resource(args.kind, args.path.rstrip("/").rsplit("/", 1)[-1],
                                 args.path, "", resources.parse_spec(config), args.config)
        _, warnings = depends.order(fs, [one])
        node_id = resources.make_node(fs, args.kind, args.path, config, uid=os.getuid(),
                                      gid=os.getgid())
        dynamic.verify(fs, [one])
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"created {args.path} ({args.kind}, node {node_id}) in transaction {args.txn}")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from . import resources

    with _reading(args) as fs:
        for i, path in enumerate(args.paths):
            about = resources.describe(fs, fs.resolve(path, follow=False))
            print(("---\n" if i else "") + resources.as_document(fs.canonical(path), about),
                  end="")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from . import collectors

    if bool(args.path) == args.all:
        raise FsError(errno.EINVAL, "give a collector's PATH or --all")
    with _writing(args) as fs:
        paths = collectors.find(fs) if args.all else [args.path]
        reports = []
        for path in paths:
            progress = (collectors.TerminalProgress(sys.stderr, f"{path}: ")
                        if sys.stderr.isatty() else None)
            reports.append(collectors.run(fs, path, progress))
    if not args.quiet:
        for report in reports:
            if report.error is None:  # a run that failed whole says so on stderr below
                print(report.summary())
        print(f"transaction {args.txn}" if args.txn else "nothing new: no transaction")
    failures = [failure for report in reports for failure in report.failures]
    if failures:
        kept = f" (what was collected is in transaction {args.txn})" if args.txn else ""
        raise FsError(errno.EIO, "; ".join(failures) + kept)
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    from . import site

    if args.from_dir and args.at is not None:
        raise FsError(errno.EINVAL, "--at reads the pond as of a transaction: not with --from")
    built = site.build(
        args.out, pond=None if args.from_dir else pond.pond_location(args.pond),
        from_dir=args.from_dir, at=args.at, pages=args.pages,
        data=args.data or list(site.DEFAULT_DATA), project=args.project or site.DEFAULT_PROJECT,
        title=args.title)
    print(f"built {built.pages} pages into {built.output} in {built.seconds:.1f} s")
    return 0


# ---------------------------------------------------------------------- parser

def _add_at(p: argparse.ArgumentParser) -> None:
    p.add_argument("--at", type=int, metavar="TXN",
                   help="read the pond as of transaction TXN (time travel)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pond`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="pond", description="A versioned filesystem for environmental data.",
        epilog="The pond is --pond PATH (a directory or s3://bucket/prefix), or $POND. "
               "Commands that change the pond are one transaction each; read commands "
               "accept --at TXN.")
    parser.add_argument("--pond", metavar="PATH",
                        help="the pond: a directory or s3://bucket/prefix (default: $POND)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"pondfs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help_text: str, **kw) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=kw.pop("description", help_text),
                           **kw)
        p.set_defaults(func=func)
        return p

    command("init", cmd_init, "create a new, empty pond")

    p = command("ls", cmd_ls, "list directories, files or glob matches")
    p.add_argument("-l", dest="long", action="store_true",
                   help="long listing: mode, links, owner, size, time, version, format")
    p.add_argument("paths", nargs="*", metavar="PATH", help="paths or globs (default /)")
    _add_at(p)

    p = command("cat", cmd_cat, "write files to stdout (a series as one Parquet file)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    _add_at(p)

    p = command("stat", cmd_stat, "show a node's attributes")
    p.add_argument("paths", nargs="+", metavar="PATH")
    _add_at(p)

    p = command("cp", cmd_cp, "copy files between the host and the pond", description=CP_HELP,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-r", "--recursive", action="store_true", help="copy directories")
    p.add_argument("--format", choices=[DATA, TABLE, SERIES], help="format of new pond files")
    p.add_argument("--time-column", help="a series' time column (default: timestamp)")
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("dest", metavar="DEST")
    _add_at(p)

    p = command("mkdir", cmd_mkdir, "create directories")
    p.add_argument("-p", "--parents", action="store_true",
                   help="create missing parents; no error if it exists")
    p.add_argument("paths", nargs="+", metavar="PATH")

    p = command("rm", cmd_rm, "remove files (and directories with -r)")
    p.add_argument("-r", "--recursive", action="store_true", help="remove directories")
    p.add_argument("-f", "--force", action="store_true", help="ignore missing paths")
    p.add_argument("paths", nargs="+", metavar="PATH")

    p = command("mv", cmd_mv, "move or rename a file or directory")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("dest", metavar="DEST")

    p = command("ln", cmd_ln, "make a symbolic link (ln -s TARGET LINK)")
    p.add_argument("-s", "--symbolic", action="store_true", help="symbolic (required)")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("link", metavar="LINK")

    outputs = ["table", "csv", "json"]
    p = command("log", cmd_log, "transactions newest first, or the versions of one path")
    p.add_argument("path", nargs="?", metavar="PATH")
    p.add_argument("-n", dest="limit", type=int, metavar="N", help="at most N lines")
    p.add_argument("-o", "--output", choices=outputs, default="table")
    _add_at(p)

    p = command("show", cmd_show, "raw oplog rows (of one path, or all)")
    p.add_argument("path", nargs="?", metavar="PATH")
    p.add_argument("-o", "--output", choices=outputs, default="table")
    _add_at(p)

    p = command("query", cmd_query, "run DataFusion SQL over pond files and the oplog",
                description="Run SQL. FROM '/path' or FROM '/glob/*.series' reads table and "
                            "series files; the table oplog holds the oplog's rows.")
    p.add_argument("sql", metavar="SQL")
    p.add_argument("-o", "--output", choices=outputs, default="table")
    _add_at(p)

    p = command("check", cmd_check, "verify every invariant of the pond; exit 1 on problems")
    p.add_argument("--quick", action="store_true", help="skip content hashes")
    _add_at(p)

    p = command("apply", cmd_apply, "create or update the resources declared in YAML files",
                description="Create or update every resource (apiVersion, kind, name, desc, "
                            "path, spec) in the YAML files, as one transaction; unchanged "
                            "resources write nothing. Everything is checked first.")
    p.add_argument("-f", "--file", dest="files", action="append", required=True,
                   metavar="FILE", help="a YAML file of one or more resources (repeatable)")

    p = command("mknod", cmd_mknod, "make one dynamic node from a spec file")
    p.add_argument("kind", metavar="KIND", help="factory or collector name")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--config", required=True, metavar="FILE", help="the spec, in YAML")

    p = command("describe", cmd_describe,
                "show a resource (dynamic node) as a YAML document: kind, desc, spec")
    p.add_argument("paths", nargs="+", metavar="PATH")
    _add_at(p)

    p = command("run", cmd_run, "run a collector (or --all of them) as one transaction",
                description="Collect what is new since the last run into the pond, as one "
                            "transaction. Progress shows on a terminal only. A source that "
                            "fails keeps what it had collected; the command then exits 1.")
    p.add_argument("path", nargs="?", metavar="PATH", help="the collector's node")
    p.add_argument("--all", action="store_true", help="every collector, in path order")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")

    p = command("site", cmd_site, "build the pond's Observable Framework site",
                description="Mount the pond read-only, build the static site of its pages "
                            "(template resources under --pages) and data (--data) with "
                            "Observable Framework into OUT, and unmount. OUT is replaced "
                            "whole once the build succeeded; building and viewing need no "
                            "network. See pondfs/site.py.")
    p.add_argument("action", choices=["build"])
    p.add_argument("out", metavar="OUT", help="the output directory (replaced)")
    p.add_argument("--from", dest="from_dir", metavar="DIR",
                   help="build from this mounted pond (or copy of one) instead of mounting")
    p.add_argument("--pages", default="/site", metavar="PATH",
                   help="pond directory of page sections and index/index.md (default /site)")
    p.add_argument("--data", action="append", metavar="PATH",
                   help="pond directory the pages read, as data/PATH (repeatable; "
                        "default /reduce)")
    p.add_argument("--project", metavar="DIR", help="the site project (default: site/ "
                   "beside the pondfs package)")
    p.add_argument("--title", help="the site's title (default Pond)")
    _add_at(p)
    p.set_defaults(pond_optional=True)

    p = command("maintain", cmd_maintain,
                "checkpoint, compact small files, remove unreferenced old data")
    p.add_argument("--retention-hours", type=float, default=168.0,
                   help="keep unreferenced data younger than this (default 168)")

    p = command("backup", cmd_backup,
                "back up the pond to S3; list, verify and forget restore points",
                description=BACKUP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["push", "list", "verify", "forget"])
    p.add_argument("url", metavar="URL", help="s3://bucket/prefix")
    p.add_argument("-j", "--jobs", type=int, default=16, help="transfers at once (default 16)")
    p.add_argument("--quick", action="store_true", help="verify sizes only, download nothing")
    p.add_argument("--at", type=int, metavar="TXN", help="verify this restore point only")
    p.add_argument("--keep-last", type=int, metavar="N",
                   help="forget: keep the N newest restore points")
    p.add_argument("--keep-within", metavar="DURATION",
                   help="forget: keep the restore points pushed within DURATION of the "
                        "newest (90s, 30m, 12h, 7d, 2w, 1d12h)")
    p.add_argument("--dry-run", action="store_true",
                   help="forget: list what would be deleted, delete nothing")
    p.add_argument("--abort-uploads-after", metavar="DURATION",
                   help="push: abort unfinished multipart uploads idle for this long "
                        "(default 1h; 0 aborts every one)")
    p.set_defaults(pond_optional=True)

    p = command("restore", cmd_restore, "make a new pond from an S3 backup",
                description="Restore the backup at URL into the new directory DIR, verifying "
                            "every hash; DIR appears only once the pond is whole and checked.")
    p.add_argument("url", metavar="URL", help="s3://bucket/prefix")
    p.add_argument("dir", metavar="DIR", help="a directory that does not exist yet")
    p.add_argument("--at", type=int, metavar="TXN",
                   help="restore point (see pond backup list; default the newest)")
    p.add_argument("-j", "--jobs", type=int, default=16, help="transfers at once (default 16)")
    p.set_defaults(pond_optional=True)
    return parser


def _refuse_empty_paths(args: argparse.Namespace) -> None:
    """An empty path names nothing (as in POSIX); tinyfs would resolve it to the root."""
    for attr in ("paths", "sources", "dest", "source", "link", "path"):
        value = getattr(args, attr, None)
        for path in value if isinstance(value, list) else [value]:
            if path is not None and _split_side(path)[1] == "":
                raise FsError(errno.ENOENT, f"{path!r}: no such file or directory "
                              "(the path is empty)")


def run(argv: list[str] | None = None) -> int:
    """Run one ``pond`` command; its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="pond: %(levelname)s: %(message)s")
    try:
        _refuse_empty_paths(args)
        if not getattr(args, "pond_optional", False):
            args.location = pond.pond_location(args.pond)
        return args.func(args)
    except FsError as exc:
        print(f"pond {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 141
    except OSError as exc:  # on the host side: a missing directory, a full disk, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"pond {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pond: interrupted; nothing was committed", file=sys.stderr)
        return 130


def main() -> None:
    """Console entry point. Exits without interpreter teardown, which Delta Lake has been
    seen to abort in, so a success is never reported as a crash."""
    code = run()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = code or 141
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
