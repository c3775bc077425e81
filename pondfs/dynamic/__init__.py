"""Computed nodes: factories whose directories and files derive from other nodes.

Each factory is one module here, registered by name in :data:`FACTORIES`. A factory module
provides three functions over its spec (the resource's ``spec`` mapping, stored as YAML):

``check(spec: dict) -> Any``
    validate the spec and return it parsed (raise :class:`~pondfs.resources.SpecError`
    naming the field, e.g. ``spec.inputs[1].pattern``; use :class:`~pondfs.resources.Fields`);
``build(fs: FS, config: bytes, node_id: str) -> DynamicNode``
    the node (``parse_spec(config)`` gives the spec back); building computes nothing;
``input_patterns(spec: dict) -> list[str]``
    the absolute glob patterns the node reads (``pond apply`` orders resources by them and
    reports inputs that point nowhere; see :mod:`pondfs.dynamic.depends`);
``verify(fs: FS, spec: dict) -> Any`` (optional)
    check the spec against the pond as it is, once every resource of the ``pond apply`` is
    staged (``sql-derived`` plans its query against its inputs' schemas); cheap: it must
    not compute other nodes.

Shared pieces (inputs by pattern, fingerprints, cached computed files, Parquet helpers) are
in :mod:`pondfs.dynamic.computed`. Modules are imported when a factory is first validated
or built, so a ``pond`` command that uses none pays nothing for them.
"""

from __future__ import annotations

import errno
import importlib
from collections.abc import Iterable
from types import ModuleType

from ..resources import Resource, SpecError, spec_validator
from ..tinyfs import FS, DynamicNode, FactoryRegistry, FsError

#: Factory names and the module implementing each.
FACTORIES = {
    "glob": "pondfs.dynamic.globbed",
    "timeseries-join": "pondfs.dynamic.join",
    "temporal-reduce": "pondfs.dynamic.reduce",
    "sql-derived": "pondfs.dynamic.sql_derived",
    "template": "pondfs.dynamic.template",
}


def module(kind: str) -> ModuleType:
    """The module implementing factory ``kind``."""
    return importlib.import_module(FACTORIES[kind])


def input_patterns(kind: str, spec: dict) -> list[str]:
    """The input patterns of a resource of ``kind`` ([] for kinds that are not factories
    here, such as collectors)."""
    if kind not in FACTORIES:
        return []
    return module(kind).input_patterns(spec)


def verify(fs: FS, resources: Iterable[Resource]) -> None:
    """Run each resource's ``verify`` against ``fs`` (where its factory has one): an
    FsError(EINVAL) naming the resource and the field when one cannot work."""
    for resource in resources:
        check = getattr(module(resource.kind), "verify", None) \
            if resource.kind in FACTORIES else None
        if check is None:
            continue
        try:
            check(fs, resource.spec)
        except SpecError as exc:
            raise FsError(errno.EINVAL, f"{resource.source} ({resource.kind} "
                          f"{resource.name}): {exc}") from None


def register(registry: FactoryRegistry) -> None:
    """Register every factory of this package in ``registry``."""
    for kind in FACTORIES:

        def build(fs: FS, config: bytes, node_id: str, kind: str = kind) -> DynamicNode:
            return module(kind).build(fs, config, node_id)

        def check(spec: dict, kind: str = kind) -> object:
            return module(kind).check(spec)

        registry.register(kind, build, spec_validator(check))
