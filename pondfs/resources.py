"""Resources: pond nodes declared in YAML and applied idempotently (``pond apply``).

A resource file holds one or more YAML documents in the DuckPond style::

    apiVersion: pondfs/v1
    kind: HydroVu                 # a kind registered in pondfs.kinds (computed or executable)
    name: hydrovu                 # letters, digits, '.', '_', '-'
    desc: Noyo Harbor sondes      # optional
    path: /etc/hydrovu            # optional: where the node lives; default /etc/<name>
    spec:                         # what the kind needs; checked by the kind's validator
      ...

Each resource is a dynamic node of the pond: its factory is ``kind``, its configuration is
``spec`` as canonical YAML (keys sorted, so reformatting or comments are no change), and its
``desc`` is the extended attribute ``user.pondfs.desc``. Its UUID is the node id. Applying
creates the node (and missing parent directories) or, when the spec or desc differs, adds a
new version of it in place; an unchanged resource writes nothing. Every document of every file
is checked before anything is written, and an error names the file, the document (counted
from 1), the field and the reason.

Secrets are never written into a spec: a spec holds references such as
``${env:HYDROVU_CLIENT_ID}``, which stay references in the pond and are resolved from the
environment only when the resource runs (:func:`resolve_env`).

Kinds (:mod:`pondfs.kinds`) validate their spec with :class:`Fields` and report problems as
:class:`SpecError`.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .tinyfs import DIRECTORY, DYNAMIC, FS, ROOT_ID, FsError, join_path, split_path

if TYPE_CHECKING:
    import yaml

    from .kinds import Kinds

# yaml is imported by the functions that use it: a tenth of a second of start-up that a
# pond command touching no resource should not pay.

log = logging.getLogger(__name__)

API_VERSION = "pondfs/v1"
#: Where a resource lives when its document gives no ``path``.
DEFAULT_DIR = "/etc"
#: The extended attribute that holds a resource's ``desc``.
DESC_XATTR = "user.pondfs.desc"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_TOP_FIELDS = ("apiVersion", "kind", "name", "desc", "path", "spec")
_MISSING = object()


class SpecError(ValueError):
    """A field of a spec is missing, mistyped or out of range; ``field`` is its dotted path."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Fields:
    """The fields of one mapping, read one at a time with their type checked.

    ``where`` is the mapping's own dotted path (``spec``, ``spec.devices[2]``), so every
    error names the exact field. :meth:`done` rejects fields nobody asked for (typos).
    """

    def __init__(self, mapping: Any, where: str):
        if not isinstance(mapping, dict):
            raise SpecError(where, f"must be a mapping, not {_type_name(mapping)}")
        self.mapping = mapping
        self.where = where
        self._read: set[str] = set()

    def field(self, key: str) -> str:
        """The dotted path of ``key``."""
        return f"{self.where}.{key}"

    def get(self, key: str, types: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        """The value of ``key`` if it has one of ``types`` (``default`` when absent)."""
        self._read.add(key)
        value = self.mapping.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise SpecError(self.field(key), "missing")
            return default
        wanted = types if isinstance(types, tuple) else (types,)
        # bool is an int to Python but not to a person writing YAML.
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in wanted)
            raise SpecError(self.field(key), f"must be {names}, not {_type_name(value)}")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0,
               positive: bool = False) -> float:
        """A number at least ``minimum`` (above 0 when ``positive``)."""
        value = self.get(key, (int, float), default)
        if value < minimum or (positive and value <= 0):
            bound = "above 0" if positive else f"at least {minimum:g}"
            raise SpecError(self.field(key), f"must be {bound}, not {value}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        """An integer at least ``minimum``."""
        value = self.get(key, int, default)
        if value < minimum:
            raise SpecError(self.field(key), f"must be at least {minimum}, not {value}")
        return value

    def duration(self, key: str, default: float | None) -> float | None:
        """A duration (``6h``, ``1d12h``, or a number of seconds) in seconds, above 0."""
        from .durations import parse_duration

        value = self.get(key, (str, int, float), default)
        if value is None:
            return None
        try:
            seconds = float(value) if isinstance(value, (int, float)) else parse_duration(value)
        except ValueError as exc:
            raise SpecError(self.field(key), str(exc)) from None
        if seconds <= 0:
            raise SpecError(self.field(key), f"must be above 0, not {value}")
        return seconds

    def done(self) -> None:
        """Raise if the mapping holds a field that was never read."""
        unknown = sorted(str(k) for k in self.mapping if k not in self._read)
        if unknown:
            raise SpecError(self.field(unknown[0]), "unknown field")


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping"}


def _type_name(value: Any) -> str:
    if value is None:
        return "empty"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def env_reference(fields: Fields, key: str) -> str:
    """A field that must be a ``${env:NAME}`` reference, so its secret value is never stored;
    a SpecError if it is missing."""
    value = fields.get(key, str)
    if not _ENV_REFERENCE.fullmatch(value):
        raise SpecError(fields.field(key), "must be a reference like ${env:NAME} to an "
                        "environment variable (secrets are never stored in the pond)")
    return value


def resolve_env(value: str, field: str) -> str:
    """``value`` with every ``${env:NAME}`` replaced from the environment (at run time only)."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SpecError(field, f"environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REFERENCE.sub(lookup, value)


def canonical(spec: dict) -> bytes:
    """The stored form of a spec: YAML with sorted keys, so formatting is no change."""
    import yaml

    return yaml.safe_dump(spec, sort_keys=True, allow_unicode=True,
                          default_flow_style=False).encode()


def parse_spec(config: bytes, what: str = "spec") -> dict:
    """A stored (or hand-written) spec back as a mapping."""
    import yaml

    try:
        spec = yaml.safe_load(config) if config.strip() else {}
    except yaml.YAMLError as exc:
        raise FsError(errno.EINVAL, f"{what}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(spec, dict):
        raise FsError(errno.EINVAL, f"{what}: must be a mapping, not {_type_name(spec)}")
    return spec


# ---------------------------------------------------------------------- documents


@dataclass(frozen=True)
class Resource:
    """One validated resource document; ``settings`` is its spec as its kind parsed it."""

    kind: str
    name: str
    path: str
    desc: str
    spec: dict
    source: str  # "<file>: document <n>", for messages
    settings: Any = dataclasses.field(compare=False, repr=False)

    @property
    def config(self) -> bytes:
        """The configuration stored in the node."""
        return canonical(self.spec)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def load(paths: Iterable[str], kinds: Kinds) -> list[Resource]:
    """Read and check every document of every file in ``paths``, each spec by its kind in
    ``kinds``. The first problem raises FsError(EINVAL) naming the file, the document, the
    field and the reason.
    """
    import yaml

    resources: list[Resource] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                documents = list(yaml.safe_load_all(f))
        except OSError as exc:
            raise FsError(exc.errno or errno.EIO, f"{path}: {exc.strerror}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            reason = _yaml_problem(exc) if isinstance(exc, yaml.YAMLError) else str(exc)
            raise FsError(errno.EINVAL, f"{path}: not valid YAML: {reason}") from None
        for index, document in enumerate(documents, start=1):
            if document is None:
                continue  # an empty document, e.g. after a trailing '---'
            source = f"{path}: document {index}"
            resource = _check_document(document, source, kinds)
            if resource.path in seen:
                raise FsError(errno.EINVAL, f"{source}: path: {resource.path} is also the "
                              f"path of {seen[resource.path]}")
            seen[resource.path] = source
            resources.append(resource)
    return resources


def _check_document(document: Any, source: str, kinds: Kinds) -> Resource:
    try:
        fields = Fields(document, "")
        version = fields.get("apiVersion", str)
        if version != API_VERSION:
            raise SpecError(".apiVersion", f"must be {API_VERSION}, not {version!r}")
        kind = fields.get("kind", str)
        if kind not in kinds.names():
            raise SpecError(".kind", f"unknown kind {kind!r} (known: "
                            f"{', '.join(kinds.names())})")
        name = fields.get("name", str)
        if not _NAME.fullmatch(name):
            raise SpecError(".name", f"{name!r} is not a name (letters, digits, '.', '_', "
                            "'-'; not starting with '.', '_' or '-')")
        desc = fields.get("desc", str, "")
        path = fields.get("path", str, join_path(DEFAULT_DIR, name))
        parts = split_path(path)
        if not path.startswith("/") or not parts or any(p in (".", "..") for p in parts):
            raise SpecError(".path", f"must be an absolute pond path below /, not {path!r}")
        spec = fields.get("spec", dict)
        fields.done()
    except SpecError as exc:
        raise FsError(errno.EINVAL, f"{source}: {str(exc).lstrip('.')}") from None
    try:
        settings = kinds.settings(kind, spec)
    except SpecError as exc:
        raise FsError(errno.EINVAL, f"{source} ({kind} {name}): {exc}") from None
    return Resource(kind, name, "/" + "/".join(parts), desc, spec, source, settings)


# ---------------------------------------------------------------------- applying


@dataclass(frozen=True)
class Applied:
    """What applying one resource did: ``created``, ``updated`` or ``unchanged``."""

    resource: Resource
    action: str
    node_id: str


def apply(fs: FS, resources: list[Resource], uid: int = 0, gid: int = 0) -> list[Applied]:
    """Create or update each resource's node in ``fs`` (pending; the caller commits).

    Every resource is checked against the pond first (a path held by something else, or by
    a resource of another kind, is an error), so a failure stages nothing.
    """
    plan = [(r, _existing(fs, r)) for r in resources]
    done = []
    for resource, node_id in plan:
        if node_id is None:
            done.append(Applied(resource, "created", make_node(
                fs, resource.kind, resource.path, resource.config, resource.desc, uid, gid)))
            continue
        _, config = fs.dynamic_config(node_id)
        if config == resource.config and _desc(fs, node_id) == resource.desc:
            done.append(Applied(resource, "unchanged", node_id))
            continue
        if config != resource.config:
            fs.set_dynamic_config(node_id, resource.config)
        if _desc(fs, node_id) != resource.desc:
            _set_desc(fs, node_id, resource.desc)
        done.append(Applied(resource, "updated", node_id))
    return done


def _existing(fs: FS, resource: Resource) -> str | None:
    """The node already at the resource's path, if it is a resource of the same kind."""
    try:
        node_id = fs.resolve(resource.path, follow=False)
    except FsError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise FsError(exc.errno or errno.EINVAL, f"{resource.source}: path: {exc}") from None
    stored = fs.get(node_id) if "/" not in node_id else None
    if stored is None or stored.kind != DYNAMIC:
        raise FsError(errno.EEXIST, f"{resource.source}: path: {resource.path} exists and is "
                      "not a resource")
    kind, _ = fs.dynamic_config(node_id)
    if kind != resource.kind:
        raise FsError(errno.EEXIST, f"{resource.source}: path: {resource.path} is a {kind} "
                      f"resource, not {resource.kind} (remove it first)")
    return node_id


def _desc(fs: FS, node_id: str) -> str:
    try:
        return fs.getxattr(node_id, DESC_XATTR).decode()
    except FsError:
        return ""


def _set_desc(fs: FS, node_id: str, desc: str) -> None:
    if desc:
        fs.setxattr(node_id, DESC_XATTR, desc.encode())
    else:
        fs.removexattr(node_id, DESC_XATTR)


def makedirs(fs: FS, path: str, uid: int = 0, gid: int = 0) -> str:
    """The directory at absolute ``path``, made (0755) with any missing parents."""
    dir_id = fs.resolve("/")
    walked = ""
    for part in split_path(path):
        walked = join_path(walked, part)
        child = fs.lookup(dir_id, part)
        if child is None:
            child = fs.mkdir(dir_id, part, 0o755, uid, gid)
        else:
            child = fs.resolve(walked)  # through a symlink, if it is one
            if fs.kind(child) != DIRECTORY:
                raise FsError(errno.ENOTDIR, f"not a directory: {walked}")
        dir_id = child
    return dir_id


def make_node(fs: FS, kind: str, path: str, config: bytes, desc: str = "", uid: int = 0,
              gid: int = 0) -> str:
    """Create the dynamic node ``kind`` at ``path`` (parents made as needed); its node id."""
    parts = split_path(path)
    parent = makedirs(fs, "/" + "/".join(parts[:-1]), uid, gid)
    node_id = fs.create_dynamic(parent, parts[-1], kind, config, uid, gid)
    if desc:
        _set_desc(fs, node_id, desc)
    return node_id


def find(fs: FS, under: str = "/") -> list[tuple[str, str]]:
    """``(path, kind)`` of every resource (dynamic node) in the pond (below ``under``, if
    it is a directory; none if it is missing), sorted by path (computed directories are not
    entered)."""
    found = []
    try:
        top = fs.resolve(under)
    except FsError as exc:
        if exc.errno == errno.ENOENT:
            return []
        raise
    stack = [(fs.canonical(under), ROOT_ID if under == "/" else top)]
    while stack:
        here, dir_id = stack.pop()
        for name, op in fs.entries(dir_id).items():
            if op.kind == DIRECTORY:
                stack.append((join_path(here, name), op.node_id))
            elif op.kind == DYNAMIC:
                found.append((join_path(here, name), fs.dynamic_config(op.node_id)[0]))
    return sorted(found)


def stored(fs: FS, path: str, kinds: Kinds) -> Resource:
    """The resource whose node is at ``path`` in ``fs``, its stored spec checked by its kind
    (FsError(EINVAL) naming ``path`` if it is not a resource or its spec is not valid)."""
    node_id = fs.resolve(path, follow=False)
    about = describe(fs, node_id)
    spec = parse_spec(fs.dynamic_config(node_id)[1], path)
    try:
        settings = kinds.settings(about["kind"], spec)
    except SpecError as exc:
        raise FsError(errno.EINVAL, f"{path}: {exc}") from None
    return Resource(about["kind"], split_path(path)[-1], path, about["desc"], spec, path,
                    settings)


def document(fs: FS, path: str, kinds: Kinds) -> str:
    """The resource at ``path`` as a document that ``pond apply`` takes back, ending in
    comments: its node, version and transaction, and what it reads and makes (its kind's
    ``reads`` and ``makes``)."""
    node_id = fs.resolve(path, follow=False)
    about = describe(fs, node_id)
    path = fs.canonical(path)
    document = {"apiVersion": API_VERSION, "kind": about["kind"],
                "name": split_path(path)[-1], "path": path}
    if about["desc"]:
        document["desc"] = about["desc"]
    import yaml

    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    spec = about["config"].rstrip("\n")
    text += "spec:" + ("".join(f"\n  {line}" for line in spec.splitlines()) if spec and
                       spec != "{}" else " {}")
    text += f"\n# node {about['node']}, version {about['version']}, transaction {about['txn']}\n"
    try:
        resource = stored(fs, path, kinds)
    except FsError as exc:  # a kind this pondfs does not know, or a spec it no longer takes
        return text + f"# {exc}\n"
    text += "".join(f"# reads {pattern}\n" for pattern in kinds.reads(resource))
    return text + "".join(f"# makes {made} when run (pond run {path})\n"
                          for made in kinds.makes(resource)[1:])


def describe(fs: FS, node_id: str) -> dict[str, Any]:
    """A stored dynamic node's kind, configuration (as stored: secrets as references), desc."""
    v = fs.get(node_id)
    if v.kind != DYNAMIC:
        raise FsError(errno.EINVAL, "not a resource (dynamic node)")
    kind, config = fs.dynamic_config(node_id)
    return {"kind": kind, "node": node_id, "version": v.version, "txn": v.txn,
            "desc": _desc(fs, node_id), "config": config.decode("utf-8", "replace")}
