"""Content objects of a pond that lives in S3: ``objects/<hash[:2]>/<hash>`` below its prefix.

The bucket holds the objects; a local :class:`~pondfs.oplog.objects.ObjectStore` is their
cache. Objects are immutable and named by their content hash, so a cached copy never goes stale:

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
from collections.abc import Callable, Container, Iterable, Iterator
from typing import BinaryIO

from pondfs.s3 import Bucket
from pondfs.tinyfs import HASH_RE, Chunk, CorruptContent

from .objects import ObjectStore

log = logging.getLogger(__name__)

_OBJECTS = "objects"


class S3ObjectStore:
    """The content objects in ``bucket``, cached in the local object store ``cache``; the
    methods of :class:`~pondfs.oplog.objects.ObjectStore` that a pond's persistence uses."""

    def __init__(self, bucket: Bucket, cache: ObjectStore):
        self.bucket = bucket
        self.cache = cache

    def key(self, digest: str) -> str:
        """The object's path below the pond's prefix (the name is checked first)."""
        self.cache.path(digest)
        return f"{_OBJECTS}/{digest[:2]}/{digest}"

    def put(self, chunks: Iterable[Chunk], *, durable: bool = True) -> tuple[str, int]:
        """Store the concatenation of ``chunks`` in the bucket; return its (hash, size).

        Content the bucket already holds (with the right size) is not uploaded again. An
        upload is durable when it returns, whatever ``durable`` says.
        """
        return self._upload(*self.cache.put(chunks, durable=False))

    def put_file(self, source: int, *, durable: bool = True,
                 progress: Callable[[int], None] | None = None) -> tuple[str, int]:
        """Store what open descriptor ``source`` holds from its offset on, as :meth:`put`."""
        return self._upload(*self.cache.put_file(source, durable=False, progress=progress))

    def _upload(self, digest: str, size: int) -> tuple[str, int]:
        """Upload the cached object ``digest`` unless the bucket has it; (digest, size)."""
        key = self.key(digest)
        there = self.bucket.head(key)
        if there is not None and there.size == size:
            log.debug("object %s (%d bytes) already in the bucket", digest, size)
        else:
            self.bucket.put_file(key, self.cache.path(digest))
            log.debug("uploaded object %s (%d bytes)", digest, size)
        return digest, size

    def sync(self, shas: Iterable[str]) -> None:
        """Nothing to do: every object was durable in the bucket before ``put`` returned."""

    def open(self, digest: str) -> BinaryIO:
        """A seekable reader of object ``digest`` (fetched into the cache first, verified);
        CorruptContent names a missing or corrupt object."""
        self._cached(digest)
        return self.cache.open(digest)

    def copy_to(self, digest: str, out: int) -> int:
        """Copy object ``digest`` to descriptor ``out``, verified (see ObjectStore.copy_to)."""
        self._cached(digest)
        return self.cache.copy_to(digest, out)

    def _cached(self, digest: str) -> None:
        if not self.cache.path(digest).exists():
            self._fetch(digest)

    def _fetch(self, digest: str) -> None:
        key = self.key(digest)
        if self.bucket.head(key) is None:
            raise CorruptContent(f"object {digest} is missing ({self.bucket.location}/{key})")
        got, size = self.cache.put(self.bucket.get_chunks(key), durable=False)
        if got != digest:
            self.cache.path(got).unlink(missing_ok=True)
            raise CorruptContent(f"object {digest} in {self.bucket.location} (its bytes hash "
                                 f"to {got})")
        log.debug("fetched object %s (%d bytes) into the cache", digest, size)

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
    return HASH_RE.fullmatch(name) is not None
