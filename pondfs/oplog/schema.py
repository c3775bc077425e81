"""The row layout of the operation log: one Arrow/Delta row per :class:`NodeVersion`.

Every NodeVersion field is a column of the same name. ``xattrs`` is a map from name to bytes,
``entries`` a list of (name, node_id, kind, op, part_id) structs, ``content`` the inline bytes
(null when the content is a content object). The table is partitioned by ``part_id``.

The columns added since the first layout (``nlink``, ``rdev``, and ``part_id`` of entries, for
hard links and special files) are nullable: rows of older ponds hold null there, read as the
field's default (one name, no device, the partition the entry's kind implies). A writer adds
them to an older pond's table with its first commit (:func:`missing_columns`).

Besides node versions, each pond transaction writes one *transaction row* in the reserved
partition :data:`TXN_PARTITION` (kind ``transaction``, ``txn`` its number, ``content`` its
:class:`TxnInfo` as compact JSON, with the records of the runs it was, if any), in the
same Delta commit as its node versions: ``pond log`` reads those rows, so the Delta log's
own history is never needed and Delta may clean it up.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import MISSING, fields

import pyarrow as pa

from pondfs.tinyfs import DirOp, NodeVersion, TxnInfo

log = logging.getLogger(__name__)

#: The partition column of the Delta table.
PARTITION_COLUMN = "part_id"

#: The column that names each version's content by its hash (:mod:`pondfs.tinyfs.hashing`).
HASH_COLUMN = "blake3"

#: The column that carries inline bytes; left out of listings.
CONTENT_COLUMN = "content"

#: The partition of transaction rows. Node partitions are node ids (UUIDs), never this.
TXN_PARTITION = "_txn"

#: The ``kind`` of a transaction row.
TXN_KIND = "transaction"

ENTRY_TYPE = pa.struct(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("node_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("op", pa.string(), nullable=False),
        pa.field("part_id", pa.string(), nullable=True),
    ]
)

XATTRS_TYPE = pa.map_(pa.string(), pa.binary())

SCHEMA = pa.schema(
    [
        pa.field("part_id", pa.string(), nullable=False),
        pa.field("node_id", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("txn", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        pa.field("mode", pa.int64(), nullable=False),
        pa.field("uid", pa.int64(), nullable=False),
        pa.field("gid", pa.int64(), nullable=False),
        pa.field("atime_ns", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("ctime_ns", pa.int64(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field(HASH_COLUMN, pa.string(), nullable=False),
        pa.field("inline", pa.bool_(), nullable=False),
        pa.field(CONTENT_COLUMN, pa.binary(), nullable=True),
        pa.field("xattrs", XATTRS_TYPE, nullable=False),
        pa.field("min_time", pa.int64(), nullable=True),
        pa.field("max_time", pa.int64(), nullable=True),
        pa.field("time_column", pa.string(), nullable=False),
        pa.field("entries", pa.list_(ENTRY_TYPE), nullable=False),
        pa.field("snapshot", pa.bool_(), nullable=False),
        pa.field("deleted", pa.bool_(), nullable=False),
        pa.field("timestamp_ns", pa.int64(), nullable=False),
        pa.field("nlink", pa.int64(), nullable=True),
        pa.field("rdev", pa.int64(), nullable=True),
    ]
)

#: The columns of a listing: everything but the inline bytes.
LISTING_COLUMNS = [name for name in SCHEMA.names if name != CONTENT_COLUMN]


def to_table(versions: Sequence[NodeVersion]) -> pa.Table:
    """The Arrow table of ``versions``, one row each, in :data:`SCHEMA`."""
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    for v in versions:
        for name in SCHEMA.names:
            value = getattr(v, name)
            if name == "xattrs":
                value = sorted(value.items())
            elif name == "entries":
                value = [
                    {"name": e.name, "node_id": e.node_id, "kind": e.kind, "op": e.op,
                     "part_id": e.part_id or None}
                    for e in value
                ]
            elif name == CONTENT_COLUMN and not v.inline:
                value = None
            columns[name].append(value)
    return pa.table(columns, schema=SCHEMA)


def missing_columns(schema: pa.Schema) -> list[str]:
    """The columns (``entries.part_id`` for a field of the entries) of :data:`SCHEMA` that a
    table of ``schema`` lacks: an older pond's, until a commit adds them."""
    missing = [name for name in SCHEMA.names if name not in schema.names]
    if "entries" in schema.names:
        entry = schema.field("entries").type.value_type
        missing += [f"entries.{f.name}" for f in ENTRY_TYPE
                    if entry.get_field_index(f.name) < 0]
    return missing


def from_table(table: pa.Table) -> list[NodeVersion]:
    """The NodeVersions of ``table``'s rows; absent columns (``content``) and nulls in the
    nullable columns older ponds lack take the field's default (None for content).

    Builds each version with positional arguments from whole columns: three times faster
    than keyword arguments per row, which matters when listing 10,000 entries.
    """
    n = table.num_rows
    columns = []
    for f in fields(NodeVersion):
        if f.name not in table.column_names:
            if f.default_factory is not MISSING:  # a fresh value per row
                columns.append([f.default_factory() for _ in range(n)])
            else:
                columns.append([f.default] * n)
            continue
        arrow = table.column(f.name)
        column = arrow.to_pylist()
        if f.name == "xattrs":
            column = [dict(pairs) if pairs else {} for pairs in column]
        elif f.name == "entries":
            column = [tuple(DirOp(e["name"], e["node_id"], e["kind"], e["op"],
                                  e.get("part_id") or "") for e in ops) if ops else ()
                      for ops in column]
        elif arrow.null_count and f.default is not MISSING and f.default is not None:
            column = [f.default if value is None else value for value in column]
        columns.append(column)
    return [NodeVersion(*row) for row in zip(*columns, strict=True)]


def txn_row(info: TxnInfo) -> NodeVersion:
    """The transaction row that records ``info`` in :data:`TXN_PARTITION`."""
    fields = dataclasses.asdict(info)
    for optional in ("runs", "tag"):  # most transactions are neither: their rows stay small
        if fields[optional] is None:
            del fields[optional]
    content = json.dumps(fields, separators=(",", ":")).encode()
    return NodeVersion(
        part_id=TXN_PARTITION, node_id=TXN_PARTITION, version=info.txn, txn=info.txn,
        kind=TXN_KIND, size=len(content), content=content, timestamp_ns=info.timestamp_ns,
    )


def txn_infos(table: pa.Table) -> list[TxnInfo]:
    """The :class:`TxnInfo` of each transaction row in ``table`` (its ``content`` column)."""
    return [TxnInfo(**json.loads(content)) for content in table.column(CONTENT_COLUMN).to_pylist()]
