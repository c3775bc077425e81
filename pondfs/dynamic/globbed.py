"""The ``glob`` factory (DuckPond's combine/visit): a directory of the nodes a pattern matches.

::

    apiVersion: pondfs/v1
    kind: glob
    name: temperatures
    path: /by-site
    spec:
      in_pattern: /hydrovu/devices/*/*.series   # an absolute glob; every wildcard captures
      out_pattern: $1.series                    # each entry's name, from the captures

Each entry *is* the matched node: reading it reads the original (a series reads as its
merged Parquet file, a directory lists the original's entries), and a factory reading an
entry reads the original's versions. Entries are read-only. Names follow the rule of
:func:`~pondfs.dynamic.computed.unique_names`: when two matches would get the same name the
first (in path order) keeps it and the others are left out with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from ..kinds import Kind
from ..resources import Fields
from ..tinyfs import DIRECTORY, FS, SYMLINK, DynamicDirectory, DynamicFile, DynamicNode, join_path
from .computed import (
    check_template,
    fingerprint,
    input_mtime_ns,
    named_matches,
    pattern_field,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GlobSpec:
    in_pattern: str
    out_pattern: str


def check(spec: dict) -> GlobSpec:
    fields = Fields(spec, "spec")
    in_pattern = pattern_field(fields, "in_pattern")
    out_pattern = fields.get("out_pattern", str, "$0")
    check_template(out_pattern, in_pattern, fields.field("out_pattern"))
    fields.done()
    return GlobSpec(in_pattern, out_pattern)


def build(fs: FS, spec: GlobSpec, node_id: str) -> DynamicNode:
    return GlobDirectory(fs, spec, node_id)


def linked(fs: FS, path: str, node_id: str) -> DynamicNode:
    """The node at ``path`` (stored or computed; a symlink followed) seen through a
    read-only link to it."""
    if fs.kind(node_id) == SYMLINK:
        node_id = fs.resolve(path)
    if fs.kind(node_id) == DIRECTORY:
        return LinkedDirectory(fs, path, node_id)
    return LinkedFile(fs, node_id)


class LinkedFile(DynamicFile):
    """A file that reads as another node (``target``)."""

    def __init__(self, fs: FS, target: str):
        self.fs = fs
        self.target = target

    def fingerprint(self) -> str:
        return fingerprint(self.fs, self.target)

    def mtime_ns(self) -> int:
        return input_mtime_ns(self.fs, self.target)

    def size(self) -> int:
        return self.fs.stat(self.target).size

    def open(self) -> BinaryIO:
        return self.fs.open_read(self.target)


class LinkedDirectory(DynamicDirectory):
    """A directory that lists as another directory (``target`` at ``path``), its entries
    linked too."""

    def __init__(self, fs: FS, path: str, target: str):
        self.fs = fs
        self.path = path
        self.target = target

    def mtime_ns(self) -> int:
        return input_mtime_ns(self.fs, self.target)

    def entries(self) -> Iterable[tuple[str, DynamicNode]]:
        return [(name, linked(self.fs, join_path(self.path, name), child))
                for name, child in sorted(self.fs.listdir(self.target).items())]

    def lookup(self, name: str) -> DynamicNode | None:
        child = self.fs.lookup(self.target, name)
        return None if child is None else linked(self.fs, join_path(self.path, name), child)


class GlobDirectory(DynamicDirectory):
    """The entries of one ``glob`` node."""

    def __init__(self, fs: FS, spec: GlobSpec, node_id: str):
        self.fs = fs
        self.spec = spec
        self.node_id = node_id

    def mtime_ns(self) -> int:
        return self.fs.get(self.node_id).mtime_ns

    def entries(self) -> Iterable[tuple[str, DynamicNode]]:
        return [(name, linked(self.fs, match.path, match.node_id)) for name, match in
                named_matches(self.fs, self.spec.in_pattern, self.spec.out_pattern)]


KIND = Kind("glob", validate=check, build=build, reads=lambda spec: [spec.in_pattern])
