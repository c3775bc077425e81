"""Where each file of a pond lives, below its directory or S3 prefix (written here once)::

    oplog/                     the Delta table of node versions, partitioned by part_id
    oplog/_delta_log/          its log: <version>.json entries, checkpoints, _last_checkpoint
    objects/<hash[:2]>/<hash>  content objects, named by their BLAKE3 hash
    lock                       the single-writer lock
    cache/                     derived caches (a local pond only)

Only this package reads or writes these paths; other layers ask a store (its snapshot's
files, its cache directory) or the functions of :mod:`.snapshot`.
"""

from __future__ import annotations

import re

OPLOG = "oplog"
#: The Delta log's directory below the table's (the table is ``oplog/``).
LOG_DIR = "_delta_log"
DELTA_LOG = f"{OPLOG}/{LOG_DIR}"
OBJECTS = "objects"
LOCK = "lock"
CACHE = "cache"

#: The log's pointer to its newest checkpoint: the one file of a pond that is rewritten.
LAST_CHECKPOINT = "_last_checkpoint"

#: Where the files that make up a pond's snapshots are: what a copy of the pond holds.
SNAPSHOT_PREFIXES = (f"{OPLOG}/", f"{OBJECTS}/")

#: Names of the log's files of one table version: its entry, checksum and checkpoint parts.
LOG_FILE_RE = re.compile(r"(\d{20})\.(json|crc|checkpoint(\.\d+\.\d+)?\.parquet)")


def object_name(digest: str) -> str:
    """Where content object ``digest`` lives below ``objects/``: ``<hash[:2]>/<hash>``."""
    return f"{digest[:2]}/{digest}"


def object_path(digest: str) -> str:
    """Where content object ``digest`` lives below the pond: ``objects/<hash[:2]>/<hash>``."""
    return f"{OBJECTS}/{object_name(digest)}"


def log_entry_name(version: int) -> str:
    """The name of the log entry of table ``version`` (in ``oplog/_delta_log/``)."""
    return f"{version:020d}.json"


def checkpoint_name(version: int) -> str:
    """The name of the single-file checkpoint of table ``version``."""
    return f"{version:020d}.checkpoint.parquet"
