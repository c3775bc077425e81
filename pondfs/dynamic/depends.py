"""Dependencies between resources: which resource reads what another one makes.

A resource *makes* its own path and, for an executable kind, where its runs write (a
collector's ``spec.output``); it *reads* its input patterns. Both come from its kind
(:class:`~pondfs.kinds.Kind`'s ``makes`` and ``reads``). Resource B depends on A when one of
B's patterns can match A's path, something below it, or a directory above it (a ``glob``
over ``/combined/*`` reads a join at ``/combined/BDock``; a reduce over
``/hydrovu/devices/*/*.series`` reads what the collector with ``output: /hydrovu`` writes).

:func:`order` sorts the resources of one ``pond apply`` so that each comes after those it
reads, reports a cycle naming its resources, and rejects an input that points nowhere: a
pattern whose fixed part (the directories before its first wildcard; the whole path when
it has none) neither exists in the pond nor lies at, below or above what some resource
makes. A pattern that points somewhere but matches nothing yet (no node in the pond, and no
resource being applied whose path it can match) is only worth a warning, whoever makes what
it points at: data may arrive later, for instance with a collector's first run.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass

from ..kinds import KINDS
from ..resources import Resource, find, stored
from ..tinyfs import FS, FsError, GlobPattern, split_path


@dataclass(frozen=True)
class _Node:
    resource: Resource
    applying: bool  # False: a resource already in the pond, not being applied
    label: str
    makes: tuple[str, ...]
    reads: tuple[str, ...]


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
    applying = {r.path for r in resources}
    nodes = [_Node(r, True, f"{r.source} ({r.kind} {r.name} at {r.path})", KINDS.makes(r),
                   tuple(KINDS.reads(r))) for r in resources]
    # Executable resources already in the pond make where their runs write, too (computed
    # ones make only their own node, which is in the pond already).
    for path, kind in find(fs):
        if KINDS.executable(kind) and path not in applying:
            found = stored(fs, path, KINDS)
            nodes.append(_Node(found, False, path, KINDS.makes(found), ()))
    warnings = [warning for node in nodes for warning in _check_inputs(fs, node, nodes)]
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
        if node.applying:
            ordered.append(node.resource)

    for node in nodes:
        visit(node, [])
    return ordered, warnings


def _check_inputs(fs: FS, node: _Node, nodes: Sequence[_Node]) -> list[str]:
    """Warnings for ``node``'s inputs that match nothing yet; FsError(EINVAL) for one that
    points nowhere."""
    warnings = []
    others = [other for other in nodes if other is not node]
    for pattern in node.reads:
        fixed = fixed_part(pattern)
        if not _exists(fs, fixed) and not any(_under(fixed, m) or _under(m, fixed)
                                              for other in others for m in other.makes):
            raise FsError(errno.EINVAL, f"{node.label}: input {pattern}: {fixed} does "
                          "not exist in the pond and no resource makes it")
        coming = any(other.applying and could_read(pattern, other.resource.path)
                     for other in others)
        if not coming and next(iter(fs.glob(pattern)), None) is None:
            warnings.append(f"{node.label}: input {pattern} matches nothing yet")
    return warnings
