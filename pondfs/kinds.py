"""Kinds: what a resource's ``kind`` can name, computed and executable, in one registry.

A kind is one :class:`Kind` descriptor: its name, how it checks a spec (``validate``, which
returns the kind's *settings*), how it builds its node (``build``), the patterns it reads
and the paths it makes, and, optionally, how it is checked against the pond as it is
(``verify``) and how it runs (``run``). Every hook but ``validate`` takes the settings, never
the raw spec mapping.

There are three sorts of kind, the first two as in DuckPond's factory registry:

*computed* kinds (:data:`COMPUTED`: ``glob``, ``timeseries-join``, ...)
    have ``build``: their node is a directory or file computed from what they read, and
    everything they make is that node;
*executable* kinds (:data:`EXECUTABLE`: the ``HydroVu`` collector)
    have ``run`` (``pond run PATH``) and no ``build``: their node reads as its own
    configuration (secrets as ``${env:...}`` references), and ``makes`` names where a run
    writes (``spec.output``);
*declared* kinds (:data:`DECLARED`: ``pipeline``, ``backup``)
    have neither: their node reads as its configuration, which commands act on (``pond run
    PIPELINE`` runs a pipeline's steps; ``pond backup push`` pushes to every declared
    ``backup`` target).

Each kind is the ``KIND`` of one module, named in those tables and imported the first time
the kind is used (like fsspec's ``known_implementations``), so a ``pond`` command pays only
for the kinds it meets: the collector's HTTP client, DataFusion or Jinja are not loaded by a
``pond ls``. :data:`KINDS` is the registry every caller shares: tinyfs validates and builds
dynamic nodes with it (it is a :class:`~pondfs.tinyfs.Factories`), ``pond apply`` and
``pond mknod`` check specs and order resources with it (:mod:`pondfs.dynamic.depends`),
``pond describe`` says what a resource reads and makes, and ``pond run`` runs through it.
"""

from __future__ import annotations

import errno
import importlib
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from .resources import Resource, SpecError, parse_spec
from .tinyfs import FS, DynamicFile, DynamicNode, FsError

if TYPE_CHECKING:
    from .collectors import Progress, RunReport

#: Computed kinds and the module whose ``KIND`` each is.
COMPUTED = {
    "glob": "pondfs.dynamic.globbed",
    "sql-derived": "pondfs.dynamic.sql_derived",
    "template": "pondfs.dynamic.template",
    "temporal-reduce": "pondfs.dynamic.reduce",
    "timeseries-join": "pondfs.dynamic.join",
}
#: Executable kinds (collectors) and the module whose ``KIND`` each is.
EXECUTABLE = {
    "HydroVu": "pondfs.collectors.hydrovu",
}
#: Declared kinds (configuration that commands act on) and the module whose ``KIND`` each is.
DECLARED = {
    "backup": "pondfs.backup_targets",
    "pipeline": "pondfs.pipelines",
}


def _nothing(settings: Any) -> Sequence[str]:
    return ()


@dataclass(frozen=True)
class Kind:
    """One kind of resource: what its name stands for, to every command that meets it.

    ``validate(spec) -> settings``
        check a spec mapping (raise :class:`~pondfs.resources.SpecError` naming the field,
        e.g. ``spec.inputs[1].pattern``; use :class:`~pondfs.resources.Fields`) and return
        it parsed: the settings every other hook takes;
    ``build(fs, settings, node_id) -> DynamicNode``
        a computed kind's node; building computes nothing;
    ``reads(settings) -> patterns``
        the absolute glob patterns the node reads (``pond apply`` orders resources by them
        and reports inputs that point nowhere);
    ``makes(settings) -> paths``
        where an executable kind's run writes, outside its own node;
    ``verify(fs, settings)`` (optional)
        check the settings against the pond as it is, once every resource of the ``pond
        apply`` is staged (``sql-derived`` plans its query against its inputs' schemas);
        cheap: it must not compute other nodes;
    ``run(fs, node_id, path, settings, progress) -> RunReport``
        an executable kind's run: collect what is new into ``fs`` (pending; ``pond run``
        commits).

    ``declared`` kinds have neither ``build`` nor ``run``.
    """

    name: str
    validate: Callable[[dict], Any]
    build: Callable[[FS, Any, str], DynamicNode] | None = None
    reads: Callable[[Any], Sequence[str]] = _nothing
    makes: Callable[[Any], Sequence[str]] = _nothing
    verify: Callable[[FS, Any], object] | None = None
    run: Callable[[FS, str, str, Any, Progress], RunReport] | None = None
    declared: bool = False

    def __post_init__(self) -> None:
        if (self.build is not None) + (self.run is not None) + self.declared != 1:
            raise TypeError(f"kind {self.name}: give build (a computed kind), run (an "
                            "executable kind) or declared, one of them")
        if self.build is not None and self.makes is not _nothing:
            raise TypeError(f"kind {self.name}: a computed kind makes only its own node")


class ConfigFile(DynamicFile):
    """The node of an executable kind: it reads as its own configuration (read-only YAML)."""

    def __init__(self, config: bytes, mtime_ns: int):
        self.config = config
        self._mtime_ns = mtime_ns

    def mtime_ns(self) -> int:
        return self._mtime_ns

    def size(self) -> int:
        return len(self.config)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.config)


class Kinds:
    """Kind names mapped to the module defining each; a module is imported on first use.

    ``computed``, ``executable`` and ``declared`` map names to modules (see
    :data:`COMPUTED`); the module must define ``KIND``, a :class:`Kind` of that name and sort.
    """

    def __init__(self, computed: Mapping[str, str], executable: Mapping[str, str],
                 declared: Mapping[str, str] | None = None):
        self._modules = {**computed, **executable, **(declared or {})}
        self._executable = frozenset(executable)
        self._declared = frozenset(declared or ())
        self._loaded: dict[str, Kind] = {}

    def names(self) -> list[str]:
        """Every kind's name, sorted."""
        return sorted(self._modules)

    def executable(self, name: str) -> bool:
        """Whether ``name`` is an executable kind (a collector); imports nothing."""
        return name in self._executable

    def declared(self, name: str) -> bool:
        """Whether ``name`` is a declared kind (a pipeline, a backup target); imports
        nothing."""
        return name in self._declared

    def get(self, name: str) -> Kind:
        """The kind called ``name`` (its module imported now if it was not yet)."""
        kind = self._loaded.get(name)
        if kind is not None:
            return kind
        if name not in self._modules:
            raise FsError(errno.EINVAL, f"unknown kind {name!r} (known: "
                          f"{', '.join(self.names())})")
        kind = importlib.import_module(self._modules[name]).KIND
        if kind.name != name or (kind.run is not None) != self.executable(name) or \
                kind.declared != self.declared(name):
            raise TypeError(f"{self._modules[name]}.KIND does not describe kind {name}")
        self._loaded[name] = kind
        return kind

    def settings(self, name: str, spec: dict) -> Any:
        """``spec`` checked by kind ``name``: its settings (SpecError naming the field)."""
        return self.get(name).validate(spec)

    def _stored_settings(self, name: str, config: bytes) -> Any:
        try:
            return self.settings(name, parse_spec(config))
        except SpecError as exc:
            raise FsError(errno.EINVAL, str(exc)) from None

    def validate(self, name: str, config: bytes) -> None:
        """Check a stored configuration (canonical YAML) for kind ``name``; FsError(EINVAL)
        naming the field if it is wrong."""
        self._stored_settings(name, config)

    def build(self, name: str, fs: FS, config: bytes, node_id: str) -> DynamicNode:
        """The node of the dynamic node ``node_id`` of kind ``name``; computes nothing."""
        kind = self.get(name)
        settings = self._stored_settings(name, config)
        if kind.build is None:
            return ConfigFile(config, fs.get(node_id).mtime_ns)
        return kind.build(fs, settings, node_id)

    def reads(self, resource: Resource) -> Sequence[str]:
        """The patterns ``resource`` reads."""
        return self.get(resource.kind).reads(resource.settings)

    def makes(self, resource: Resource) -> tuple[str, ...]:
        """What ``resource`` makes: its own path, and where its runs write."""
        return (resource.path, *self.get(resource.kind).makes(resource.settings))

    def verify(self, fs: FS, resources: Sequence[Resource]) -> None:
        """Run each resource's ``verify`` (where its kind has one) against ``fs``: an
        FsError(EINVAL) naming the resource and the field when one cannot work."""
        for resource in resources:
            check = self.get(resource.kind).verify
            if check is None:
                continue
            try:
                check(fs, resource.settings)
            except SpecError as exc:
                raise FsError(errno.EINVAL, f"{resource.source} ({resource.kind} "
                              f"{resource.name}): {exc}") from None


#: The registry of every kind pondfs ships.
KINDS = Kinds(COMPUTED, EXECUTABLE, DECLARED)
