"""Consistency check of a pond: one method per invariant, each returning the problems found.

Like S3QL's fsck, but read-only: it reports and never repairs. Tests end by running it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from . import formats
from .errors import FsError, SchemaConflict
from .fs import FS
from .hashing import content_hash, stream_hash
from .records import DIRECTORY, ROOT_ID, SERIES, NodeVersion


@dataclass
class CheckReport:
    """What a check found: ``problems`` break an invariant; ``notes`` are harmless facts."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    nodes: int = 0
    versions: int = 0

    @property
    def ok(self) -> bool:
        """True when no invariant is broken."""
        return not self.problems


class Checker:
    """Checks every invariant of the pond behind ``fs`` as of its transaction."""

    def __init__(self, fs: FS, *, verify_content: bool = True,
                 progress: Callable[[int], None] | None = None):
        self.fs = fs
        self.verify_content = verify_content
        self.progress = progress or (lambda n: None)
        self.report = CheckReport()
        self.history: dict[str, list[NodeVersion]] = defaultdict(list)
        self.referenced: dict[str, list[str]] = defaultdict(list)

    def run(self) -> CheckReport:
        """Run every check and return the report."""
        for v in self.fs.store.scan(self.fs.as_of):
            self.history[v.node_id].append(v)
        for versions in self.history.values():
            versions.sort(key=lambda v: v.version)
        self.report.nodes = len(self.history)
        self.report.versions = sum(len(v) for v in self.history.values())
        for check in (self.check_root, self.check_version_numbers, self.check_tree,
                      self.check_names, self.check_series_ranges, self.check_series_schemas,
                      self.check_content,
                      self.check_unreferenced_objects):
            check()
        return self.report

    def _problem(self, text: str) -> None:
        self.report.problems.append(text)

    def _latest(self, node_id: str) -> NodeVersion | None:
        versions = self.history.get(node_id)
        return versions[-1] if versions else None

    def check_root(self) -> None:
        """The root directory exists and is a live directory."""
        root = self._latest(ROOT_ID)
        if root is None or root.deleted or root.kind != DIRECTORY:
            self._problem("root directory is missing")

    def check_version_numbers(self) -> None:
        """Each node's versions are 1..n with transactions that never go back."""
        for node_id, versions in self.history.items():
            numbers = [v.version for v in versions]
            if numbers != list(range(1, len(numbers) + 1)):
                self._problem(f"node {node_id}: versions {numbers} are not 1..{len(numbers)}")
            txns = [v.txn for v in versions]
            if txns != sorted(txns):
                self._problem(f"node {node_id}: versions go back in transaction order")

    def check_tree(self) -> None:
        """Every directory entry names a live node of the stated kind, stored in the
        partition the entry names or its directory implies."""
        stack = [("/", ROOT_ID)]
        seen: set[str] = set()
        while stack:
            path, dir_id = stack.pop()
            if dir_id in seen:
                self._problem(f"{path}: directory reached twice (a cycle or a hard link)")
                continue
            seen.add(dir_id)
            try:
                entries = self.fs.entries(dir_id)
            except FsError as exc:
                self._problem(f"{path}: cannot list: {exc}")
                continue
            for name, op in sorted(entries.items()):
                child_path = path.rstrip("/") + "/" + name
                self.referenced[op.node_id].append(child_path)
                child = self._latest(op.node_id)
                if child is None:
                    self._problem(f"{child_path}: entry points to missing node {op.node_id}")
                elif child.deleted:
                    self._problem(f"{child_path}: entry points to removed node {op.node_id}")
                elif child.kind != op.kind:
                    self._problem(f"{child_path}: entry says {op.kind}, node is {child.kind}")
                elif child.part_id != (op.part_id or (
                        op.node_id if op.kind == DIRECTORY else dir_id)):
                    self._problem(f"{child_path}: node stored in partition {child.part_id}")
                elif op.kind == DIRECTORY:
                    stack.append((child_path, op.node_id))

    def check_names(self) -> None:
        """Every live node is named by directory entries: a directory by exactly one, any
        other node by as many as its ``nlink`` says (no orphans, no miscounted links)."""
        for node_id, versions in self.history.items():
            latest = versions[-1]
            if node_id == ROOT_ID or latest.deleted:
                continue
            paths = sorted(self.referenced.get(node_id, []))
            if not paths:
                self._problem(f"node {node_id} ({latest.kind}) is in no directory")
            elif latest.kind == DIRECTORY and len(paths) > 1:
                self._problem(f"directory {node_id} is named {len(paths)} times: "
                              f"{', '.join(paths)}")
            elif latest.kind != DIRECTORY and len(paths) != latest.nlink:
                self._problem(f"node {node_id} has {len(paths)} name(s) but nlink "
                              f"{latest.nlink}: {', '.join(paths)}")

    def check_series_ranges(self) -> None:
        """Every series version records the event-time range it holds."""
        for node_id, versions in self.history.items():
            for v in versions:
                if v.format == SERIES and v.size and not v.deleted and (
                        v.min_time is None or v.max_time is None or v.min_time > v.max_time):
                    self._problem(f"series {node_id} v{v.version}: bad time range")

    def check_series_schemas(self) -> None:
        """Every live series' versions join (:func:`~pondfs.tinyfs.formats.join_schema`):
        one written before the rule, or below it, may not; it is reported once, naming the
        series, the column and the first version that breaks it."""
        for node_id, versions in self.history.items():
            latest = versions[-1]
            if latest.format != SERIES or latest.deleted:
                continue
            name = ", ".join(sorted(self.referenced.get(node_id, []))) or f"node {node_id}"
            schema = None
            for v in versions:
                if v.min_time is None or v.deleted:
                    continue
                try:
                    with self.fs.open_version(v) as f:
                        found = formats.parquet_schema(f, f"series {name} v{v.version}")
                    schema = found if schema is None else formats.join_schema(
                        schema, found, f"series {name} v{v.version}")
                except SchemaConflict as exc:
                    self._problem(f"series {name}: column {exc.column!r} is {exc.new} in "
                                  f"v{v.version}, {exc.old} in the versions before it")
                    break
                except FsError:
                    break  # content that cannot be read is check_content's to report

    def check_content(self) -> None:
        """Every version's content is present and matches its recorded size and hash."""
        if not self.verify_content:
            return
        done = 0
        for node_id, versions in self.history.items():
            for v in versions:
                if v.kind == DIRECTORY or v.deleted or not v.blake3:
                    continue
                what = f"node {node_id} v{v.version}"
                try:
                    size, digest = self._digest(v)
                except FsError as exc:
                    self._problem(f"{what}: {exc}")
                    continue
                if size != v.size or digest != v.blake3:
                    self._problem(f"{what}: content does not match its size/hash")
                done += 1
                self.progress(done)

    def _digest(self, v: NodeVersion) -> tuple[int, str]:
        if v.inline:
            data = self.fs.store.read_inline(v)
            return len(data), content_hash(data)
        with self.fs.store.open_object(v.blake3) as f:
            digest = stream_hash(f)
            return f.tell(), digest

    def check_unreferenced_objects(self) -> None:
        """Content objects no row refers to (left by interrupted writes): a note, not a
        problem; ``pond maintain`` reclaims them."""
        used = {v.blake3 for vs in self.history.values() for v in vs if not v.inline}
        spare = [o for o in self.fs.store.object_ids() if o not in used]
        if spare:
            self.report.notes.append(
                f"{len(spare)} unreferenced content object(s); `pond maintain` reclaims them")
