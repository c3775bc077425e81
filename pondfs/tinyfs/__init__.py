"""tinyfs: the filesystem model of a pond (nodes, paths, globs, transactions).

tinyfs knows nothing of FUSE or Delta Lake: it keeps its nodes through the small
:class:`~pondfs.tinyfs.persistence.Persistence` interface.
"""

from .cache import DerivedCache
from .dynamic import DynamicDirectory, DynamicFile, DynamicNode, FactoryRegistry
from .errors import CorruptContent, FsError, PondLocked
from .fs import FS, Stat, read_all, validate_name
from .memory import MemoryPersistence
from .persistence import Persistence
from .records import (
    CHUNK_SIZE,
    DATA,
    DIRECTORY,
    DYNAMIC,
    FILE,
    ROOT_ID,
    SERIES,
    SYMLINK,
    TABLE,
    NodeVersion,
    TxnInfo,
)

__all__ = [
    "CHUNK_SIZE", "DATA", "DIRECTORY", "DYNAMIC", "FILE", "FS", "ROOT_ID", "SERIES", "SYMLINK",
    "TABLE",
    "CorruptContent", "DerivedCache", "DynamicDirectory", "DynamicFile", "DynamicNode",
    "FactoryRegistry", "FsError", "MemoryPersistence", "NodeVersion", "Persistence",
    "PondLocked", "Stat", "TxnInfo", "read_all", "validate_name",
]
