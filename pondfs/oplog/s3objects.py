"""Content objects of a pond that lives in S3: ``objects/<sha[:2]>/<sha>`` below its prefix.

The bucket holds the objects; a local :class:`~pondfs.oplog.objects.ObjectStore` is their
cache. Objects are immutable and named by their SHA-256, so a cached copy never goes stale:

- Storing writes the content into the cache while hashing it (as a local pond does), then
  uploads it unless the bucket has it already. An S3 PUT is durable once it returns, so
  there is nothing to fsync: the upload is done before the commit that names it.
- Reading fetches the object into the cache once, checking its hash as it arrives (bytes
  that do not hash to the object's name are reported, and never cached under it), then reads
  the cached file, which checks the hash again as any object read does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Container, Iterable, Iterator
from typing import BinaryIO

from pondfs.s3 import Bucket
from pondfs.tinyfs.errors import CorruptContent

from .objects import ObjectStore

log = logging.getLogger(__name__)

_OBJECTS = "objects"


class S3ObjectStore:
    """The content objects in ``bucket``, cached in the local object store ``cache``; the
    methods of :class:`~pondfs.oplog.objects.ObjectStore` that a pond's persistence uses."""

    def __init__(self, bucket: Bucket, cache: ObjectStore):
        self.bucket = bucket
        self.cache = cache

    def key(self, sha256: str) -> str:
        """The object's path below the pond's prefix (the name is checked first)."""
        self.cache.path(sha256)
        return f"{_OBJECTS}/{sha256[:2]}/{sha256}"

    def put(self, chunks: Iterable[bytes], *, durable: bool = True) -> tuple[str, int]:
        """Store the concatenation of ``chunks`` in the bucket; return its (sha256, size).

        Content the bucket already holds (with the right size) is not uploaded again. An
        upload is durable when it returns, whatever ``durable`` says.
        """
        sha, size = self.cache.put(chunks, durable=False)
        key = self.key(sha)
        there = self.bucket.head(key)
        if there is not None and there.size == size:
            log.debug("object %s (%d bytes) already in the bucket", sha, size)
        else:
            self.bucket.put_file(key, self.cache.path(sha))
            log.debug("uploaded object %s (%d bytes)", sha, size)
        return sha, size

    def sync(self, shas: Iterable[str]) -> None:
        """Nothing to do: every object was durable in the bucket before ``put`` returned."""

    def open(self, sha256: str) -> BinaryIO:
        """A seekable reader of object ``sha256`` (fetched into the cache first, verified);
        CorruptContent names a missing or corrupt object."""
        if not self.cache.path(sha256).exists():
            self._fetch(sha256)
        return self.cache.open(sha256)

    def _fetch(self, sha256: str) -> None:
        key = self.key(sha256)
        if self.bucket.head(key) is None:
            raise CorruptContent(f"object {sha256} is missing ({self.bucket.location}/{key})")
        got, size = self.cache.put(self.bucket.get_chunks(key), durable=False)
        if got != sha256:
            self.cache.path(got).unlink(missing_ok=True)
            raise CorruptContent(f"object {sha256} in {self.bucket.location} (its bytes hash "
                                 f"to {got})")
        log.debug("fetched object %s (%d bytes) into the cache", sha256, size)

    def ids(self) -> Iterator[str]:
        """The names of every object in the bucket."""
        for stored in self.bucket.entries(_OBJECTS):
            name = stored.relative.rsplit("/", 1)[-1]
            if stored.relative == f"{_OBJECTS}/{name[:2]}/{name}" and _is_name(name):
                yield name

    def remove_unreferenced(
        self, referenced: Container[str], older_than_seconds: float
    ) -> list[str]:
        """Delete objects not in ``referenced`` and not written for ``older_than_seconds``
        from the bucket (and the cache); return the removed objects.

        The age limit protects objects uploaded by a writer that has not committed yet.
        """
        cutoff = time.time() - older_than_seconds
        removed = []
        for stored in list(self.bucket.entries(_OBJECTS)):
            name = stored.relative.rsplit("/", 1)[-1]
            if (not _is_name(name) or name in referenced
                    or stored.modified.timestamp() > cutoff):
                continue
            self.bucket.delete(stored.relative)
            self.cache.path(name).unlink(missing_ok=True)
            removed.append(name)
            log.info("removed unreferenced object %s", name)
        self.cache.remove_unreferenced(referenced, older_than_seconds)
        return removed


def _is_name(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)
