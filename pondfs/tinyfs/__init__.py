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
    BLOCK_DEVICE,
    CHAR_DEVICE,
    DATA,
    DEVICE_KINDS,
    DIRECTORY,
    DYNAMIC,
    FIFO,
    FILE,
    ROOT_ID,
    SERIES,
    SOCKET,
    SPECIAL_KINDS,
    SYMLINK,
    TABLE,
    NodeVersion,
    TxnInfo,
)

__all__ = [
    "BLOCK_DEVICE", "CHAR_DEVICE", "DATA", "DEVICE_KINDS", "DIRECTORY", "DYNAMIC", "FIFO",
    "FILE", "FS", "ROOT_ID", "SERIES", "SOCKET", "SPECIAL_KINDS", "SYMLINK", "TABLE",
    "CorruptContent", "DerivedCache", "DynamicDirectory", "DynamicFile", "DynamicNode",
    "FactoryRegistry", "FsError", "MemoryPersistence", "NodeVersion", "Persistence",
    "PondLocked", "Stat", "TxnInfo", "read_all", "validate_name",
]
