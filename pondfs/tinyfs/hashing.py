"""Content hashes: how a pond names and checks the bytes it stores.

Every content (a file version's bytes, inline in a row or a content object) is named by its
BLAKE3 hash: 256 bits, written as 64 lowercase hex digits, the ``blake3`` column of the
oplog. A pond hashes every byte it stores and verifies every object it reads, so the hash is
on the path of every large copy: BLAKE3 runs at ~2.7 GB/s on one core of this machine kind
(SIMD) and faster on several, SHA-256 at ~1.4 GB/s, and both resist collisions alike.
The ``blake3`` package releases the GIL while it hashes, so hashing overlaps I/O in threads.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from blake3 import blake3

from .records import CHUNK_SIZE

#: What a content hash looks like.
HASH_RE = re.compile(r"[0-9a-f]{64}")


def hasher(threads: int = 1) -> blake3:
    """A new incremental hasher (``update``, ``hexdigest``); ``threads`` > 1 lets one large
    update use that many threads (``blake3.AUTO``: as many as there are cores)."""
    return blake3(max_threads=threads)


def content_hash(data: bytes | bytearray | memoryview) -> str:
    """The hash of ``data``, as hex."""
    return blake3(data).hexdigest()


def stream_hash(stream: BinaryIO) -> str:
    """The hash of what ``stream`` holds from where it is to its end, read in chunks."""
    h = blake3()
    buffer = memoryview(bytearray(CHUNK_SIZE))
    # typing's BinaryIO lacks readinto, which every binary reader here has (files, BytesIO).
    while n := stream.readinto(buffer):  # type: ignore[attr-defined]
        h.update(buffer[:n])
    return h.hexdigest()


#: The hash of no bytes (an empty file, a series version that adds no rows).
EMPTY_HASH = content_hash(b"")
