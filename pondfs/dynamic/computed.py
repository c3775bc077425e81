"""What every factory shares: inputs found by pattern, their fingerprints, and computed files
whose content is made once per set of input versions and kept in the pond's derived cache.

A factory's node is usually a directory of :class:`ComputedFile` entries, or one such file.
A computed file is described, not made: it knows its factory's name and *settings* (the
parts of the configuration that shape this file) and a function that lists its input node
ids. Its cache key is the hash of factory, settings, and of each
input's id and fingerprint (the content hash of every version it reads), so

- the content is computed on the first :meth:`~ComputedFile.size` or
  :meth:`~ComputedFile.open` only (a listing computes nothing), and written to
  ``fs.cache`` (:class:`~pondfs.tinyfs.DerivedCache`, ``<pond>/cache`` on disk);
- ``st_size`` is the exact size of the cached entry;
- a second read, in this process or another, finds the entry and computes nothing;
- a new version of an input changes its fingerprint, so exactly the files that read that
  input get new keys and are recomputed when next used; the others keep theirs.

Usage, for a kind that turns each matched series into a summary::

    def build(fs, spec, node_id):                       # spec: what check(spec) returned
        return SummaryDir(fs, node_id, spec)            # a DynamicDirectory

    class SummaryDir(DynamicDirectory):
        def entries(self):
            for name, match in named_matches(self.fs, self.spec.pattern, self.spec.name):
                yield name, ComputedFile(
                    self.fs, "summary", settings={"columns": self.spec.columns},
                    inputs=lambda m=match: [m.node_id],
                    write=lambda sink, ids: write_parquet(sink, summarise(self.fs, ids[0])))

    KIND = Kind("summary", validate=check, build=build, reads=lambda spec: [spec.pattern])

Reading inputs: :func:`read_table` gives any input (a stored table or series, or another
factory's Parquet output) as one table; :func:`iter_batches` streams it a record batch at
a time (a stored series version by version), so memory stays bounded on large inputs.

:data:`COMPUTATIONS` counts the entries each factory computed in this process (tests use it
to prove a second read is a cache hit).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import errno
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from .. import durations
from ..resources import Fields, SpecError
from ..tinyfs import (
    CHUNK_SIZE,
    FS,
    SERIES,
    SYMLINK,
    DynamicDirectory,
    DynamicFile,
    DynamicNode,
    FsError,
    GlobError,
    GlobPattern,
    stream_hash,
    substitute,
    validate_name,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Entries computed (cache misses filled) in this process, per recipe's factory name.
COMPUTATIONS: Counter[str] = Counter()

#: Rows per record batch when a computed result is written as Parquet.
ROW_GROUP = 128 * 1024


# ---------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Input:
    """One node an input pattern matched: its path, node id and the pattern's captures
    (``captures[0]`` is what the first wildcard matched; see :mod:`pondfs.tinyfs.glob`)."""

    path: str
    node_id: str
    captures: tuple[str, ...]


def resolve_inputs(fs: FS, pattern: str, *, files_only: bool = True) -> list[Input]:
    """Every node matching ``pattern`` (an absolute glob), in path order.

    Symlinks are followed (``node_id`` is the target's); with ``files_only`` directories are
    skipped. Matches inside computed directories are found too (a reduce over a join's
    output). Nothing is computed: globbing lists directories, it never reads a file.
    """
    found = []
    for path, node_id, captures in fs.glob(pattern):
        if fs.kind(node_id) == SYMLINK:
            try:
                node_id = fs.resolve(path)
            except FsError:
                continue  # a dangling link is no input
        if files_only and fs.kind(node_id) != "file":
            continue
        found.append(Input(path, node_id, captures))
    return found


def named_matches(fs: FS, pattern: str, template: str, *, files_only: bool = False
                  ) -> list[tuple[str, Input]]:
    """``(name, input)`` for every node ``pattern`` matches (see :func:`resolve_inputs`),
    named by ``template`` from its captures (``$0``...), in path order, by the rule of
    :func:`unique_names`."""
    return unique_names(pattern, template, (
        (substitute(template, match.captures), match.path, match)
        for match in resolve_inputs(fs, pattern, files_only=files_only)))


def unique_names(where: str, template: str, named: Iterable[tuple[str, str, T]]
                 ) -> list[tuple[str, T]]:
    """``(name, item)`` for each ``(name, what, item)``, in order, whose ``name`` (what
    ``template`` made for ``what``: a match's path, a parameter) is usable: the one rule for
    the names of a computed directory's entries.

    A name that cannot name a file, or that an earlier output already has, is left out with
    a warning naming ``where`` (the pattern), ``what`` and the name; the first output in
    order keeps a name. A directory's entries follow inputs that come and go without a
    ``pond apply``, so one odd input must not make the whole directory unreadable.
    """
    taken: dict[str, str] = {}
    unique: list[tuple[str, T]] = []
    for name, what, item in named:
        try:
            validate_name(name)
        except FsError as exc:
            log.warning("%s: %s: the name %r makes is not usable, so it is left out: %s",
                        where, what, template, exc)
            continue
        if name in taken:
            log.warning("%s: %s and %s are both named %r by %r; keeping the first (use more "
                        "captures)", where, taken[name], what, name, template)
            continue
        taken[name] = what
        unique.append((name, item))
    return unique


def pattern_field(fields: Fields, key: str, default: str | None = None) -> str:
    """A field holding an absolute glob pattern, checked for syntax."""
    value = fields.get(key, str) if default is None else fields.get(key, str, default)
    check_pattern(value, fields.field(key))
    return value


def check_pattern(pattern: str, field: str) -> GlobPattern:
    """``pattern`` compiled; a SpecError naming ``field`` if it is not an absolute glob."""
    if not pattern.startswith("/"):
        raise SpecError(field, f"must be an absolute pond path pattern (starting with /), "
                        f"not {pattern!r}")
    try:
        return GlobPattern(pattern)
    except GlobError as exc:
        raise SpecError(field, str(exc)) from None


def check_template(template: str, pattern: str, field: str) -> None:
    """A SpecError naming ``field`` if ``template`` refers to a capture ``pattern`` lacks or
    is malformed (``$`` not followed by a digit, ``{n}`` or ``$``)."""
    compiled = check_pattern(pattern, field)
    try:
        substitute(template, ["x"] * compiled.captures)
    except GlobError as exc:
        raise SpecError(field, str(exc)) from None


# ---------------------------------------------------------------------- times

#: The default floor: event times before 2000-01-01 UTC are device clock glitches.
DEFAULT_FLOOR = 946684800
_PER_SECOND = {"s": 1, "ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}


def parse_duration(text: Any, field: str) -> int:
    """Seconds in a duration of whole seconds above 0 such as ``30s``, ``15m``, ``1h``,
    ``1d12h`` (the grammar of :mod:`pondfs.durations`); a SpecError naming ``field``
    otherwise."""
    try:
        seconds = durations.parse_duration(text)
    except ValueError as exc:
        raise SpecError(field, str(exc)) from None
    if seconds <= 0 or not seconds.is_integer():
        raise SpecError(field, f"{text!r} is not a whole number of seconds above 0")
    return int(seconds)


def parse_time(value: Any, field: str) -> int:
    """Epoch seconds (UTC) from an integer, a date, a datetime (naive means UTC) or an ISO
    8601 text; a SpecError naming ``field`` otherwise."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return value
    elif isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return int(value.timestamp())
    if isinstance(value, datetime.date):
        return int(datetime.datetime(value.year, value.month, value.day,
                                     tzinfo=datetime.UTC).timestamp())
    raise SpecError(field, f"{value!r} is not a time (epoch seconds, or an ISO 8601 date or "
                    "date-time such as 2000-01-01 or 2024-05-30T00:00:00Z)")


def time_field(fields: Fields, key: str, default: int | None) -> int | None:
    """An optional time field (see :func:`parse_time`) as epoch seconds; ``default`` when
    absent, None when given as null (``floor: null`` turns the floor off)."""
    fields.get(key, object, None)
    if key not in fields.mapping:
        return default
    value = fields.mapping[key]
    return None if value is None else parse_time(value, fields.field(key))


def units_per_second(column_type: pa.DataType) -> int:
    """How many units of a time column make one second: 1 for integers (epoch seconds),
    else by the timestamp's unit."""
    if pa.types.is_timestamp(column_type):
        return _PER_SECOND[column_type.unit]
    if pa.types.is_integer(column_type):
        return 1
    raise FsError(errno.EINVAL, f"a time column must be integer epoch seconds or a timestamp, "
                  f"not {column_type}")


# ---------------------------------------------------------------------- fingerprints


def source(fs: FS, node_id: str) -> str:
    """The node a computed link (a ``glob`` entry) stands for, else ``node_id``: reading it
    directly lets a stored series be streamed version by version."""
    while (target := getattr(fs.dynamic_node(node_id), "target", None)) is not None:
        node_id = target
    return node_id



def fingerprint(fs: FS, node_id: str) -> str:
    """A text that changes exactly when the content of ``node_id`` changes.

    A stored series: the content hash of each version holding rows; another stored file:
    its content hash; a computed file: its own cache key (never its content, so asking
    computes nothing); any other computed file: the hash of its bytes.
    """
    dynamic = fs.dynamic_node(node_id)
    if dynamic is not None:
        own = getattr(dynamic, "fingerprint", None)
        if own is not None:
            return own()
        if isinstance(dynamic, DynamicFile):
            with dynamic.open() as f:
                return "bytes:" + stream_hash(f)
        raise FsError(errno.EISDIR, f"an input must be a file, not a directory: {node_id}")
    v = fs.get(node_id)
    if v.format == SERIES:
        return "series:" + ",".join(c.blake3 for c in fs.series_versions(node_id))
    return "file:" + v.blake3


def input_mtime_ns(fs: FS, node_id: str) -> int:
    """When ``node_id`` last changed, without computing anything."""
    dynamic = fs.dynamic_node(node_id)
    return dynamic.mtime_ns() if dynamic is not None else fs.get(node_id).mtime_ns


def recipe(factory: str, settings: Any) -> str:
    """The text naming one computation: the factory and the settings that shape the result
    (JSON with sorted keys, so equal settings give equal text; dates and other values JSON
    lacks are written as text)."""
    return json.dumps([factory, settings], sort_keys=True, default=str, ensure_ascii=False)


def cache_key(recipe_text: str, inputs: Iterable[tuple[str, str]]) -> str:
    """The cache key of a recipe applied to ``(node_id, fingerprint)`` inputs (in order)."""
    h = hashlib.sha256(recipe_text.encode())
    for node_id, print_ in inputs:
        h.update(f"\n{node_id}\t{print_}".encode())
    return "dyn-" + h.hexdigest()


# ---------------------------------------------------------------------- computed files


class ComputedFile(DynamicFile):
    """A file whose bytes ``write(sink, input_ids)`` computes, cached by key.

    ``factory`` and ``settings`` (anything YAML can write: the parts of the configuration
    that shape this file's content, e.g. resolution, columns, the SQL) name the
    computation; :data:`COMPUTATIONS` counts under ``factory``. ``inputs`` returns the
    input node ids (or :class:`Input` objects, whose paths and captures then count too)
    in a stable order; it is called on every size/open (cheap: no content
    is read), so a long-lived view such as a mount sees new input versions. ``write``
    gets a binary file and what ``inputs`` returned; it runs only on a cache miss. ``mtime_ns`` is
    the newest input's (``default_mtime_ns`` when there are none).
    """

    def __init__(self, fs: FS, factory: str, settings: Any,
                 inputs: Callable[[], Sequence[str | Input]],
                 write: Callable[[BinaryIO, Sequence[Any]], None], *,
                 default_mtime_ns: int = 0):
        self.fs = fs
        self.factory = factory
        self.recipe = recipe(factory, settings)
        self.inputs = inputs
        self.write = write
        self.default_mtime_ns = default_mtime_ns

    def fingerprint(self) -> str:
        """This file's cache key: a fingerprint for files that read this one."""
        return self.key(self.inputs())

    def key(self, inputs: Sequence[str | Input]) -> str:
        return cache_key(self.recipe, ((_input_name(i), fingerprint(self.fs, input_id(i)))
                                       for i in inputs))

    def mtime_ns(self) -> int:
        return max((input_mtime_ns(self.fs, input_id(i)) for i in self.inputs()),
                   default=self.default_mtime_ns)

    def _ensure(self) -> str:
        inputs = self.inputs()
        key = self.key(inputs)
        if self.fs.cache.size(key) is None:
            log.debug("computing %s from %d inputs (%s)", self.factory, len(inputs), key)
            self.fs.cache.fill(key, lambda sink: self.write(sink, inputs))
            COMPUTATIONS[self.factory] += 1
        return key

    def size(self) -> int:
        size = self.fs.cache.size(self._ensure())
        assert size is not None
        return size

    def open(self) -> BinaryIO:
        reader = self.fs.cache.open(self._ensure())
        assert reader is not None
        return reader


def input_id(i: str | Input) -> str:
    """The node id of an input given as one or as an :class:`Input`."""
    return i if isinstance(i, str) else i.node_id


def _input_name(i: str | Input) -> str:
    # An Input's path and captures are in the key: a result named by them (a join's
    # scopes) must change when a renamed input changes them.
    return i if isinstance(i, str) else f"{i.node_id} {i.path} {list(i.captures)}"


class StaticDirectory(DynamicDirectory):
    """A computed directory whose entries come from a function (called per listing)."""

    def __init__(self, entries: Callable[[], Iterable[tuple[str, DynamicNode]]],
                 mtime_ns: Callable[[], int]):
        self._entries = entries
        self._mtime_ns = mtime_ns

    def entries(self) -> Iterable[tuple[str, DynamicNode]]:
        return self._entries()

    def mtime_ns(self) -> int:
        return self._mtime_ns()


# ---------------------------------------------------------------------- reading and writing


def iter_batches(fs: FS, node_id: str, columns: Sequence[str] | None = None,
                 batch_size: int = ROW_GROUP) -> Iterator[pa.RecordBatch]:
    """The rows of a Parquet input a batch at a time, in storage order (not time order).

    A stored series yields its versions one after the other (their union; columns missing
    in a version are missing from its batches: schema drift is the caller's to unify).
    ``columns`` limits what is read; names a version lacks are skipped.
    """
    node_id = source(fs, node_id)
    if fs.dynamic_node(node_id) is None and fs.get(node_id).format == SERIES:
        for version in fs.series_versions(node_id):
            with fs.open_version(version) as f:
                yield from _parquet_batches(f, node_id, columns, batch_size)
        return
    with fs.open_read(node_id) as f:
        yield from _parquet_batches(f, node_id, columns, batch_size)


def _parquet_batches(f: BinaryIO, what: str, columns: Sequence[str] | None,
                     batch_size: int) -> Iterator[pa.RecordBatch]:
    try:
        parquet = pq.ParquetFile(f, buffer_size=CHUNK_SIZE)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FsError(errno.EINVAL, f"{what}: not a Parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    wanted = None if columns is None else [c for c in columns if c in names]
    groups = parquet.metadata.num_row_groups
    for group in range(groups):
        # One row group at a time, read in 1 MiB pieces on this thread, and freed memory
        # handed back after each: reading a 20M-row series (4 x 5M-row versions) otherwise
        # left ~350 MiB of freed read buffers in glibc's arenas; trimmed, ~100 MiB.
        yield from parquet.iter_batches(batch_size=batch_size, row_groups=[group],
                                        columns=wanted, use_threads=False)
        if groups > 1:
            release_memory()


def release_memory() -> None:
    """Give memory freed by large reads back to the system (Arrow's pool, and glibc's
    heap where there is one)."""
    pa.default_memory_pool().release_unused()
    if _malloc_trim is not None:
        _malloc_trim(0)


def _libc_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc


_malloc_trim = _libc_malloc_trim()


def time_column(fs: FS, node_id: str, default: str) -> str:
    """The time column of an input: a stored series' own, else ``default``."""
    node_id = source(fs, node_id)
    if fs.dynamic_node(node_id) is None:
        stored = fs.get(node_id)
        if stored.format == SERIES and stored.time_column:
            return stored.time_column
    return default


def schema_of(fs: FS, node_id: str) -> pa.Schema:
    """The unified schema of a Parquet input (every series version's columns), reading only
    Parquet footers."""
    node_id = source(fs, node_id)
    if fs.dynamic_node(node_id) is None and fs.get(node_id).format == SERIES:
        return fs.series_schema(node_id)
    with fs.open_read(node_id) as f:
        return pq.ParquetFile(f).schema_arrow


def read_table(fs: FS, node_id: str, columns: Sequence[str] | None = None) -> pa.Table:
    """A Parquet input as one table; a series' versions unified (missing columns null)."""
    batches = [pa.Table.from_batches([b]) for b in iter_batches(fs, node_id, columns)]
    if not batches:
        return schema_of(fs, node_id).empty_table()
    return pa.concat_tables(batches, promote_options="permissive")


def write_parquet(sink: BinaryIO, table: pa.Table) -> None:
    """``table`` as one Parquet file into ``sink``: snappy, which every Parquet reader
    (DuckDB-Wasm, parquet-wasm, pandas) knows, and no dictionaries (derived values are
    mostly distinct floats: a dictionary costs time and saves nothing). Measured on a
    15k x 46 reduce result: 17 ms and 3.5 MB, against 116 ms and 3.5 MB for zstd with
    dictionaries."""
    pq.write_table(table, sink, compression="snappy", use_dictionary=False,
                   row_group_size=ROW_GROUP * 8)


def write_text(sink: BinaryIO, text: str) -> None:
    """``text`` as UTF-8 into ``sink``."""
    sink.write(text.encode())
