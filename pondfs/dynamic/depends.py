"""Dependencies between resources: which resource reads what another one makes.

A resource *makes* its own path (a factory's node) and, for a collector, its output
directory (``spec.output``). It *reads* its factory's input patterns (see
``input_patterns`` in :mod:`pondfs.dynamic`). Resource B depends on A when one of B's
patterns can match A's path, something below it, or a directory above it (a ``glob`` over
``/combined/*`` reads a join at ``/combined/BDock``; a reduce over
``/hydrovu/devices/*/*.series`` reads what the collector with ``output: /hydrovu`` writes).

:func:`order` sorts the resources of one ``pond apply`` so that each comes after those it
reads, reports a cycle naming its resources, and rejects an input that points nowhere: a
pattern whose fixed part (the directories before its first wildcard; the whole path when
it has none) neither exists in the pond nor lies at or below what some resource makes.
A pattern whose directory exists but that matches nothing yet is only worth a warning:
data may arrive later.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass

from ..resources import Resource, SpecError, parse_spec
from ..tinyfs import FS, FsError, GlobPattern, split_path
from . import input_patterns


@dataclass(frozen=True)
class _Node:
    resource: Resource | None  # None: a resource already in the pond, not being applied
    label: str
    makes: tuple[str, ...]
    reads: tuple[str, ...]


def _makes(kind: str, path: str, spec: dict) -> tuple[str, ...]:
    from ..collectors import COLLECTORS, collector

    made = [path]
    if kind in COLLECTORS:
        try:
            output = getattr(collector(kind).validate(spec), "output", None)
        except SpecError:
            output = None
        if isinstance(output, str):
            made.append(output)
    return tuple(made)


def could_read(pattern: str, path: str) -> bool:
    """Whether ``pattern`` can match ``path``, a path below it, or a directory above it."""
    components = split_path(pattern)
    names = split_path(path)
    for i, name in enumerate(names):
        if i == len(components):
            return True  # the pattern matches a directory above ``path``
        if components[i] == "**":
            return True
        if GlobPattern(components[i]).match(name) is None:
            return False
    return True  # ``path`` itself, or a directory the pattern descends into


def fixed_part(pattern: str) -> str:
    """The directories of ``pattern`` before its first wildcard (all of it if none)."""
    fixed = []
    for component in split_path(pattern):
        if GlobPattern(component).has_wildcards:
            break
        fixed.append(component.replace("\\", ""))
    return "/" + "/".join(fixed)


def _exists(fs: FS, path: str) -> bool:
    try:
        fs.resolve(path)
        return True
    except FsError:
        return False


def _under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def order(fs: FS, resources: Sequence[Resource]) -> tuple[list[Resource], list[str]]:
    """``resources`` in dependency order, and warnings (inputs that match nothing yet).

    Raises FsError(EINVAL) naming the resource and the pattern for an input that points
    nowhere, and naming every resource of a cycle.
    """
    from ..collectors import find

    applying = {r.path for r in resources}
    nodes = [_Node(r, f"{r.source} ({r.kind} {r.name} at {r.path})",
                   _makes(r.kind, r.path, r.spec), tuple(input_patterns(r.kind, r.spec)))
             for r in resources]
    # Collectors already in the pond make their output directories too.
    for path in find(fs):
        if path not in applying:
            kind, config = fs.dynamic_config(fs.resolve(path, follow=False))
            nodes.append(_Node(None, path, _makes(kind, path, parse_spec(config)), ()))
    warnings = []
    for node in nodes:
        for pattern in node.reads:
            fixed = fixed_part(pattern)
            made = any(_under(fixed, m) or _under(m, fixed) for other in nodes
                       if other is not node for m in other.makes)
            if made:
                continue
            if not _exists(fs, fixed):
                raise FsError(errno.EINVAL, f"{node.label}: input {pattern}: {fixed} does "
                              "not exist in the pond and no resource makes it")
            if next(iter(fs.glob(pattern)), None) is None:
                warnings.append(f"{node.label}: input {pattern} matches nothing yet")
    reads = {id(node): [other for other in nodes if any(
        could_read(p, m) for p in node.reads for m in other.makes)] for node in nodes}
    ordered: list[Resource] = []
    state: dict[int, str] = {}

    def visit(node: _Node, trail: list[_Node]) -> None:
        mark = state.get(id(node))
        if mark == "done":
            return
        if mark == "visiting":
            cycle = trail[trail.index(node):] + [node]
            raise FsError(errno.EINVAL, "resources depend on each other in a cycle: " +
                          " -> ".join(n.label for n in cycle))
        state[id(node)] = "visiting"
        for needed in reads[id(node)]:
            visit(needed, trail + [node])
        state[id(node)] = "done"
        if node.resource is not None:
            ordered.append(node.resource)

    for node in nodes:
        visit(node, [])
    return ordered, warnings
