"""S3 for pondfs: URLs, the user's AWS settings, and one bucket location through boto3.

Everything that talks to S3 (backups, ponds that live in a bucket) goes through here, so an
S3 failure always becomes one :class:`S3Error` whose message names the bucket or key and what
went wrong (no such bucket, credentials refused, ...), never a traceback.

Endpoint, region and credentials come from boto3's usual chain: the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` or
``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` for S3-compatible stores), then the profile
(``AWS_PROFILE``, ``~/.aws/config`` and ``credentials``). :class:`AwsSettings` resolves that
chain once and hands the same settings to deltalake and pyarrow, which do not read profiles.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .tinyfs import CHUNK_SIZE, FsError

log = logging.getLogger(__name__)

#: Files at least this large go up and down in parts, several at a time.
MULTIPART_THRESHOLD = 16 * 1024 * 1024

#: Connections a Bucket keeps by default.
DEFAULT_JOBS = 16

_DELETE_BATCH = 1000
_DENIED = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                     "ExpiredToken", "AccessDenied", "403"})
#: What a store answers a conditional write whose condition failed (409: a concurrent one).
_CONDITION_FAILED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict",
                               "409", "NoSuchKey", "404"})


class S3Error(FsError):
    """An S3 operation failed; the message (one line) names the bucket or key and why."""

    def __init__(self, message: str, err: int = errno.EIO):
        super().__init__(err, message)


@dataclass(frozen=True)
class S3Location:
    """A place in S3: ``s3://bucket/prefix``. Keys below it are ``prefix/relative``."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket[/prefix]``, or S3Error saying what is wrong with ``url``."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise S3Error(f"not an S3 URL (s3://bucket/prefix): {url!r}", errno.EINVAL)
        if parsed.query or parsed.fragment:
            raise S3Error(f"an S3 URL has no query or fragment: {url!r}", errno.EINVAL)
        prefix = parsed.path.strip("/")
        if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
            raise S3Error(f"an S3 prefix has no empty, '.' or '..' parts: {url!r}",
                          errno.EINVAL)
        return cls(parsed.netloc, prefix)

    def key(self, relative: str) -> str:
        """The key of ``relative`` (a '/'-separated path) under this location."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def relative(self, key: str) -> str:
        """The path of ``key`` below this location."""
        return key[len(self.prefix) + 1:] if self.prefix else key

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


@dataclass(frozen=True)
class AwsSettings:
    """The endpoint, region and credentials boto3's chain finds, for clients that do not
    read AWS profiles themselves (deltalake's object store, pyarrow's S3 filesystem)."""

    region: str
    access_key: str
    secret_key: str
    token: str | None = None
    endpoint: str | None = None

    @classmethod
    def resolve(cls) -> AwsSettings:
        """The settings in effect now, or S3Error when there are no credentials."""
        import boto3
        import botocore.session

        core = botocore.session.get_session()
        session = boto3.session.Session(botocore_session=core)
        credentials = session.get_credentials()
        if credentials is None:
            raise S3Error("no AWS credentials: set AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE", errno.EACCES)
        frozen = credentials.get_frozen_credentials()
        endpoint = (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
                    or core.get_config_variable("endpoint_url"))
        return cls(region=session.region_name or "us-east-1", access_key=frozen.access_key,
                   secret_key=frozen.secret_key, token=frozen.token, endpoint=endpoint or None)

    def delta_options(self) -> dict[str, str]:
        """deltalake ``storage_options``. An ``http://`` endpoint the user configured is
        allowed (deltalake refuses plain HTTP unless told, as ``AWS_ALLOW_HTTP``)."""
        options = {"AWS_REGION": self.region, "AWS_ACCESS_KEY_ID": self.access_key,
                   "AWS_SECRET_ACCESS_KEY": self.secret_key}
        if self.token:
            options["AWS_SESSION_TOKEN"] = self.token
        if self.endpoint:
            options["AWS_ENDPOINT_URL"] = self.endpoint
            if self.endpoint.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        return options

    def arrow_filesystem(self) -> Any:
        """A pyarrow S3 filesystem with these settings."""
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(access_key=self.access_key, secret_key=self.secret_key,
                                 session_token=self.token, region=self.region,
                                 endpoint_override=self.endpoint)


@dataclass(frozen=True)
class Stored:
    """One key below a location: its relative path, size, ETag and last change."""

    relative: str
    size: int
    etag: str
    modified: datetime


@dataclass(frozen=True)
class Upload:
    """A multipart upload in progress: the key it will make, its id, and how long (s) it
    has made no progress (since it began or its newest part was stored)."""

    relative: str
    upload_id: str
    idle: float


class Bucket:
    """One S3 location through a boto3 client; every failure becomes a one-line S3Error."""

    def __init__(self, location: S3Location, jobs: int = DEFAULT_JOBS):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.location = location
        # Retries, endpoint, region and credentials are left to the user's AWS settings.
        self.client = boto3.session.Session().client("s3", config=Config(
            max_pool_connections=max(10, 2 * jobs), connect_timeout=10, read_timeout=120,
        ))
        self.transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD // 2,
            max_concurrency=8, use_threads=True,
        )

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            yield
        except ClientError as exc:
            raise S3Error(self._explain(exc, doing)) from None
        except NoCredentialsError:
            raise S3Error("no AWS credentials: set AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE", errno.EACCES) from None
        except (BotoCoreError, Boto3Error) as exc:
            raise S3Error(f"{doing}: {exc}") from None

    def _explain(self, exc: Any, doing: str) -> str:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message") or exc
        bucket = self.location.bucket
        if code == "NoSuchBucket":
            return f"bucket '{bucket}' does not exist"
        if code in _DENIED:
            return (f"access to bucket '{bucket}' denied ({code}: {message}); "
                    "check the AWS credentials")
        if code in ("NoSuchKey", "404"):
            return f"{doing}: no such key in {self.location}"
        return f"{doing}: {code}: {message}"

    @staticmethod
    def _code(exc: Any) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    def entries(self, under: str = "") -> Iterator[Stored]:
        """Every key below the location (below ``under``, a relative directory, if given),
        in key order: one paginated listing."""
        prefix = self.location.key(under.rstrip("/") + "/" if under else "")
        with self._errors(f"listing {self.location}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    yield Stored(self.location.relative(item["Key"]), item["Size"],
                                 item.get("ETag", ""), item["LastModified"])

    def listing(self) -> dict[str, int]:
        """Size of every key below the location, by relative path."""
        return {stored.relative: stored.size for stored in self.entries()}

    def holds_any(self, under: str = "") -> bool:
        """Whether any key lies below the location (below ``under``, if given). The cheapest
        request that also proves the bucket exists and the credentials work."""
        prefix = self.location.key(under.rstrip("/") + "/" if under else "")
        with self._errors(f"listing {self.location}"):
            found = self.client.list_objects_v2(Bucket=self.location.bucket, Prefix=prefix,
                                                MaxKeys=1)
        return bool(found.get("KeyCount") or found.get("Contents"))

    def head(self, relative: str) -> Stored | None:
        """Size, ETag and last change of ``relative``, or None when there is no such key."""
        from botocore.exceptions import ClientError

        with self._errors(f"looking up {relative}"):
            try:
                found = self.client.head_object(Bucket=self.location.bucket,
                                                Key=self.location.key(relative))
            except ClientError as exc:
                if self._code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        return Stored(relative, found["ContentLength"], found["ETag"], found["LastModified"])

    def get_versioned(self, relative: str) -> tuple[bytes, str, float] | None:
        """The bytes of ``relative``, their ETag, and how many seconds ago they were written
        by the store's own clock (its Last-Modified against its Date, so a client's clock
        does not matter); None when there is no such key."""
        from botocore.exceptions import ClientError

        with self._errors(f"downloading {relative}"):
            try:
                found = self.client.get_object(Bucket=self.location.bucket,
                                               Key=self.location.key(relative))
            except ClientError as exc:
                if self._code(exc) in ("404", "NoSuchKey"):
                    return None
                raise
            data = found["Body"].read()
        now = _store_time(found)
        age = (now - found["LastModified"]).total_seconds() if now else 0
        return data, found["ETag"], age

    def put_bytes(self, relative: str, data: bytes) -> None:
        """Write ``data`` as ``relative``, replacing whatever is there."""
        with self._errors(f"uploading {relative}"):
            self.client.put_object(Bucket=self.location.bucket, Key=self.location.key(relative),
                                   Body=data)

    def put_new(self, relative: str, data: bytes) -> str | None:
        """Write ``data`` as ``relative`` only if no such key exists (a conditional PUT,
        If-None-Match: \\*); its ETag, or None when the key exists."""
        return self._put_if(relative, data, IfNoneMatch="*")

    def replace(self, relative: str, data: bytes, etag: str) -> str | None:
        """Write ``data`` as ``relative`` only if the key still has ``etag`` (If-Match); the
        new ETag, or None when the key has changed or gone."""
        return self._put_if(relative, data, IfMatch=etag)

    def _put_if(self, relative: str, data: bytes, **condition: str) -> str | None:
        from botocore.exceptions import ClientError

        with self._errors(f"uploading {relative}"):
            try:
                done = self.client.put_object(Bucket=self.location.bucket,
                                              Key=self.location.key(relative), Body=data,
                                              **condition)
            except ClientError as exc:
                if self._code(exc) in _CONDITION_FAILED:
                    return None
                raise
        return done["ETag"]

    def delete(self, relative: str, etag: str | None = None) -> bool:
        """Delete ``relative`` (only if it still has ``etag``, when given); whether it was
        deleted as asked (False: it had changed)."""
        from botocore.exceptions import ClientError

        condition = {"IfMatch": etag} if etag else {}
        with self._errors(f"deleting {relative}"):
            try:
                self.client.delete_object(Bucket=self.location.bucket,
                                          Key=self.location.key(relative), **condition)
            except ClientError as exc:
                if self._code(exc) in _CONDITION_FAILED:
                    return False
                raise
        return True

    def uploads_in_progress(self) -> Iterator[Upload]:
        """Every multipart upload begun below the location and neither completed nor
        aborted, with how long ago it last made progress (begun, or its newest part
        stored) by the store's own clock: an upload of a huge file that is still adding
        parts is not idle, however long ago it began."""
        with self._errors(f"listing multipart uploads in {self.location}"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.location.bucket, Prefix=self.location.key(""))
            for page in pages:
                now = _store_time(page)
                for item in page.get("Uploads", ()):
                    latest = max([item["Initiated"], *self._part_times(item)])
                    yield Upload(self.location.relative(item["Key"]), item["UploadId"],
                                 (now - latest).total_seconds() if now else 0.0)

    def _part_times(self, upload: dict[str, Any]) -> Iterator[datetime]:
        """When each part of a multipart upload was stored."""
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.location.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in pages:
            for part in page.get("Parts", ()):
                yield part["LastModified"]

    def abort_upload(self, upload: Upload) -> None:
        """Abort a multipart upload: the store drops the parts it holds."""
        with self._errors(f"aborting the multipart upload of {upload.relative}"):
            self.client.abort_multipart_upload(Bucket=self.location.bucket,
                                               Key=self.location.key(upload.relative),
                                               UploadId=upload.upload_id)

    def delete_many(self, relatives: list[str],
                    progress: Callable[[int], None] | None = None) -> None:
        """Delete every key in ``relatives``, a thousand per request (the most S3 takes);
        S3Error naming the first key the store refused to delete."""
        for start in range(0, len(relatives), _DELETE_BATCH):
            batch = relatives[start:start + _DELETE_BATCH]
            with self._errors(f"deleting {batch[0]} and {len(batch) - 1} more"):
                done = self.client.delete_objects(Bucket=self.location.bucket, Delete={
                    "Objects": [{"Key": self.location.key(r)} for r in batch], "Quiet": True})
            for error in done.get("Errors", ()):
                raise S3Error(f"deleting {self.location.relative(error['Key'])}: "
                              f"{error.get('Code')}: {error.get('Message')}")
            if progress is not None:
                progress(len(batch))

    def put_file(self, relative: str, path: Path,
                 progress: Callable[[int], None] | None = None) -> None:
        """Upload a file, a large one in parts, several at a time."""
        with self._errors(f"uploading {relative}"):
            self.client.upload_file(str(path), self.location.bucket, self.location.key(relative),
                                    Config=self.transfer, Callback=progress)

    def get_bytes(self, relative: str) -> bytes:
        """The bytes of ``relative``."""
        with self._errors(f"downloading {relative}"):
            body = self.client.get_object(Bucket=self.location.bucket,
                                          Key=self.location.key(relative))["Body"]
            return body.read()

    def get_chunks(self, relative: str) -> Iterator[bytes]:
        """The bytes of ``relative`` in chunks: memory stays bounded whatever its size."""
        with self._errors(f"downloading {relative}"):
            body = self.client.get_object(Bucket=self.location.bucket,
                                          Key=self.location.key(relative))["Body"]
            try:
                yield from body.iter_chunks(CHUNK_SIZE)
            finally:
                body.close()

    def get_file(self, relative: str, path: Path, progress: Callable[[int], None]) -> None:
        """Download a large file in ranged parts, several at a time."""
        with self._errors(f"downloading {relative}"):
            self.client.download_file(self.location.bucket, self.location.key(relative),
                                      str(path), Config=self.transfer, Callback=progress)


def _store_time(response: dict[str, Any]) -> datetime | None:
    """The store's clock when it answered (its Date header), if it said."""
    from email.utils import parsedate_to_datetime

    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    return parsedate_to_datetime(date) if date else None
