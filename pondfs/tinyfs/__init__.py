"""tinyfs: the filesystem model of a pond (nodes, paths, globs, transactions).

tinyfs knows nothing of FUSE or Delta Lake: it keeps its nodes through the small
:class:`~pondfs.tinyfs.persistence.Persistence` interface.

Other packages import what they use from here, never from tinyfs' modules: the view (``FS``)
and its errors, the row model a persistence stores (``NodeVersion``, ``TxnInfo``, ...), the
dynamic-node protocol, paths and globs, content hashes, table formats, and the checker.
"""

from .cache import DerivedCache
from .check import Checker
from .commit import Commit
from .dynamic import DynamicDirectory, DynamicFile, DynamicNode, Factories, FactoryRegistry
from .errors import CorruptContent, FsError, PondLocked, SchemaConflict
from .formats import read_csv, read_parquet
from .fs import FS, Stat, read_all
from .glob import GlobError, GlobPattern, substitute
from .hashing import HASH_RE, content_hash, hasher, stream_hash
from .history import (
    Change,
    check_tag_name,
    delete_tag,
    diff,
    iso_time_ns,
    normal_path,
    resolve_at,
    set_tag,
    tags,
    timeline,
    view_at,
)
from .memory import MemoryPersistence
from .paths import NAME_MAX, join_path, split_path, validate_name
from .persistence import Persistence, Snapshot, SnapshotFile
from .records import (
    BLOCK_DEVICE,
    CHAR_DEVICE,
    CHUNK_SIZE,
    DATA,
    DEVICE_KINDS,
    DIRECTORY,
    DYNAMIC,
    FIFO,
    FILE,
    INLINE_LIMIT,
    ROOT_ID,
    SERIES,
    SOCKET,
    SPECIAL_KINDS,
    SYMLINK,
    TABLE,
    Chunk,
    DirOp,
    NodeVersion,
    StoredContent,
    TxnInfo,
    new_node_id,
)
from .revert import revert, revert_to

__all__ = [
    "BLOCK_DEVICE", "CHAR_DEVICE", "CHUNK_SIZE", "DATA", "DEVICE_KINDS", "DIRECTORY",
    "DYNAMIC", "FIFO", "FILE", "FS", "HASH_RE", "INLINE_LIMIT", "NAME_MAX", "ROOT_ID", "SERIES",
    "SOCKET", "SPECIAL_KINDS", "SYMLINK", "TABLE",
    "Checker", "Chunk", "Commit", "CorruptContent", "DerivedCache", "DirOp", "DynamicDirectory",
    "DynamicFile", "DynamicNode", "Factories", "FactoryRegistry", "FsError", "GlobError",
    "GlobPattern", "MemoryPersistence", "NodeVersion", "Persistence", "PondLocked",
    "SchemaConflict", "Snapshot", "SnapshotFile", "Stat", "StoredContent", "TxnInfo",
    "Change", "check_tag_name", "delete_tag", "diff", "iso_time_ns", "normal_path",
    "resolve_at", "revert", "revert_to", "set_tag", "tags", "timeline", "view_at",
    "content_hash", "hasher", "join_path", "new_node_id", "read_all", "read_csv",
    "read_parquet", "split_path", "stream_hash", "substitute", "validate_name",
]
