"""pondfs: a versioned filesystem for environmental data.

Layers, imported downward only: ``fuse_ops`` and ``cli`` use ``tinyfs``; ``tinyfs`` persists
through the small interface in ``tinyfs.persistence`` that ``oplog`` implements on Delta Lake;
``dynamic`` and ``collectors`` plug into ``tinyfs``.
"""

__version__ = "0.1.0"
