"""Delta Lake persistence of a pond: the operation log, content objects and writer lock.

``create_pond``/``open_pond`` give an :class:`OplogPersistence`, the tinyfs persistence that
keeps node versions as rows of a Delta table; ``maintain`` keeps it compact. Where a pond's
files are is written once, in :mod:`.layout`; :mod:`.snapshot` lists those of one state for
a backup and puts a restored copy together. Only this package imports Delta Lake.
"""

from .maintain import maintain
from .table import OplogPersistence, create_pond, open_pond

#: Loggers of the libraries the oplog runs on, chatty at INFO (a mount quiets them).
LIBRARY_LOGGERS = ("deltalake",)

__all__ = ["LIBRARY_LOGGERS", "OplogPersistence", "create_pond", "maintain", "open_pond"]
