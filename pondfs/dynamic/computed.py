"""What every factory shares: inputs found by pattern, their fingerprints, and computed files
whose content is made once per set of input versions and kept in the pond's derived cache.

A factory's node is usually a directory of :class:`ComputedFile` entries, or one such file.
A computed file is described, not made: it knows its factory's name and *settings* (the
parts of the configuration that shape this file) and a function that lists its input node
ids. Its cache key is the hash of factory, settings, and of each
input's id and fingerprint (the sha256 of every version it reads), so

- the content is computed on the first :meth:`~ComputedFile.size` or
  :meth:`~ComputedFile.open` only (a listing computes nothing), and written to
  ``fs.cache`` (:class:`~pondfs.tinyfs.DerivedCache`, ``<pond>/cache`` on disk);
- ``st_size`` is the exact size of the cached entry;
- a second read, in this process or another, finds the entry and computes nothing;
- a new version of an input changes its fingerprint, so exactly the files that read that
  input get new keys and are recomputed when next used; the others keep theirs.

Usage, for a factory that turns each matched series into a summary::

    def build(fs, config, node_id):
        spec = check(parse_spec(config))
        return SummaryDir(fs, node_id, spec)            # a DynamicDirectory

    class SummaryDir(DynamicDirectory):
        def entries(self):
            for match in resolve_inputs(self.fs, self.spec.pattern):
                name = substitute(self.spec.name, match.captures)
                yield name, ComputedFile(
                    self.fs, "summary", settings={"columns": self.spec.columns},
                    inputs=lambda m=match: [m.node_id],
                    write=lambda sink, ids: write_parquet(sink, summarise(self.fs, ids[0])))

Reading inputs: :func:`read_table` gives any input (a stored table or series, or another
factory's Parquet output) as one table; :func:`iter_batches` streams it a record batch at
a time (a stored series version by version), so memory stays bounded on large inputs.

:data:`COMPUTATIONS` counts the entries each factory computed in this process (tests use it
to prove a second read is a cache hit).
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ..resources import Fields, SpecError
from ..tinyfs import FS, SERIES, SYMLINK, DynamicDirectory, DynamicFile, DynamicNode, FsError
from ..tinyfs.glob import GlobError, GlobPattern

log = logging.getLogger(__name__)

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
    from ..tinyfs.glob import substitute

    compiled = check_pattern(pattern, field)
    try:
        substitute(template, ["x"] * compiled.captures)
    except GlobError as exc:
        raise SpecError(field, str(exc)) from None


# ---------------------------------------------------------------------- fingerprints


def fingerprint(fs: FS, node_id: str) -> str:
    """A text that changes exactly when the content of ``node_id`` changes.

    A stored series: the sha256 of each version holding rows; another stored file: its
    content's sha256; a computed file: its own cache key (never its content, so asking
    computes nothing); any other computed file: the hash of its bytes.
    """
    dynamic = fs.dynamic_node(node_id)
    if dynamic is not None:
        own = getattr(dynamic, "fingerprint", None)
        if own is not None:
            return own()
        if isinstance(dynamic, DynamicFile):
            with dynamic.open() as f:
                return "bytes:" + hashlib.file_digest(f, "sha256").hexdigest()
        raise FsError(errno.EISDIR, f"an input must be a file, not a directory: {node_id}")
    v = fs.get(node_id)
    if v.format == SERIES:
        return "series:" + ",".join(c.sha256 for c in fs.series_versions(node_id))
    return "file:" + v.sha256


def input_mtime_ns(fs: FS, node_id: str) -> int:
    """When ``node_id`` last changed, without computing anything."""
    dynamic = fs.dynamic_node(node_id)
    return dynamic.mtime_ns() if dynamic is not None else fs.get(node_id).mtime_ns


def recipe(factory: str, settings: Any) -> str:
    """The text naming one computation: the factory and the settings that shape the result
    (YAML with sorted keys, so equal settings give equal text)."""
    return yaml.safe_dump([factory, settings], sort_keys=True, default_flow_style=True)


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
    input node ids in a stable order; it is called on every size/open (cheap: no content
    is read), so a long-lived view such as a mount sees new input versions. ``write``
    gets a binary file and the input ids; it runs only on a cache miss. ``mtime_ns`` is
    the newest input's (``default_mtime_ns`` when there are none).
    """

    def __init__(self, fs: FS, factory: str, settings: Any, inputs: Callable[[], Sequence[str]],
                 write: Callable[[BinaryIO, Sequence[str]], None], *,
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

    def key(self, inputs: Sequence[str]) -> str:
        return cache_key(self.recipe, ((i, fingerprint(self.fs, i)) for i in inputs))

    def mtime_ns(self) -> int:
        return max((input_mtime_ns(self.fs, i) for i in self.inputs()),
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
        parquet = pq.ParquetFile(f)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FsError(errno.EINVAL, f"{what}: not a Parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    wanted = None if columns is None else [c for c in columns if c in names]
    yield from parquet.iter_batches(batch_size=batch_size, columns=wanted)


def schema_of(fs: FS, node_id: str) -> pa.Schema:
    """The unified schema of a Parquet input (every series version's columns), reading only
    Parquet footers."""
    if fs.dynamic_node(node_id) is None and fs.get(node_id).format == SERIES:
        schemas = []
        for version in fs.series_versions(node_id):
            with fs.open_version(version) as f:
                schemas.append(pq.ParquetFile(f).schema_arrow)
        return pa.unify_schemas(schemas, promote_options="permissive") if schemas else \
            pa.schema([])
    with fs.open_read(node_id) as f:
        return pq.ParquetFile(f).schema_arrow


def read_table(fs: FS, node_id: str, columns: Sequence[str] | None = None) -> pa.Table:
    """A Parquet input as one table; a series' versions unified (missing columns null)."""
    batches = [pa.Table.from_batches([b]) for b in iter_batches(fs, node_id, columns)]
    if not batches:
        return schema_of(fs, node_id).empty_table()
    return pa.concat_tables(batches, promote_options="permissive")


def write_parquet(sink: BinaryIO, table: pa.Table) -> None:
    """``table`` as one Parquet file (zstd, statistics on) into ``sink``."""
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP * 8)


def write_text(sink: BinaryIO, text: str) -> None:
    """``text`` as UTF-8 into ``sink``."""
    sink.write(text.encode())


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as the bytes :func:`write_parquet` writes."""
    sink = io.BytesIO()
    write_parquet(sink, table)
    return sink.getvalue()
