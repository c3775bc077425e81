"""What every test shares: silence checked, mounts marked, and the shared fixtures.

- **Silence is part of correctness.** Every test fails if it logged anything at WARNING or
  above in this process, unless it claimed that record with :func:`expect_warnings`.
- **Tests that mount** are marked ``@pytest.mark.fuse`` (``-m "not fuse"`` leaves them out);
  on a machine without ``/dev/fuse`` and ``fusermount3`` they are skipped.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from fuse_helpers import Mount, have_fuse, make_pond
from s3_server import S3Server

from pondfs.oplog import create_pond
from pondfs.tinyfs import FS, MemoryPersistence, Persistence


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``fuse`` where nothing can be mounted."""
    if have_fuse():
        return
    skip = pytest.mark.skip(reason="needs /dev/fuse and fusermount3")
    for item in items:
        if item.get_closest_marker("fuse") is not None:
            item.add_marker(skip)


def _loud(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.levelno >= logging.WARNING]


@pytest.fixture(autouse=True)
def no_warnings_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if it logged a warning or an error it did not expect."""
    yield
    loud = _loud(caplog.get_records("call"))
    assert not loud, [r.getMessage() for r in loud]


@pytest.fixture
def expect_warnings(caplog: pytest.LogCaptureFixture
                    ) -> Callable[..., AbstractContextManager[list[str]]]:
    """``with expect_warnings(pattern, count=1) as messages:`` asserts that the block logs
    exactly ``count`` warnings (or errors) matching the regular expression ``pattern`` (at
    least one when ``count`` is None), and nothing else at those levels; ``messages``
    holds them after the block. They are claimed: :func:`no_warnings_logged` passes."""

    @contextmanager
    def expecting(pattern: str, count: int | None = 1) -> Iterator[list[str]]:
        before = len(caplog.records)
        messages: list[str] = []
        yield messages
        new = _loud(caplog.records[before:])
        messages += [r.getMessage() for r in new]
        matching = [m for m in messages if re.search(pattern, m)]
        assert matching == messages, f"unexpected warnings: {messages}"
        assert matching if count is None else len(matching) == count, messages
        for record in new:
            caplog.records.remove(record)

    return expecting

# ---------------------------------------------------------------- tinyfs fixtures (test_tinyfs)
# A pond store of each kind (in memory; a real Delta table under tmp_path), already holding
# the root directory (transaction 1, "init"), and a writable FS on it.


@pytest.fixture(params=["memory", "oplog"])
def store(request: pytest.FixtureRequest, tmp_path) -> Persistence:
    """An initialised pond store: transaction 1 made the root directory."""
    made: Persistence = MemoryPersistence() if request.param == "memory" else \
        create_pond(tmp_path / "pond")
    fs = FS(made)
    fs.init_root()
    assert fs.commit("init") == 1
    yield made
    made.close()


@pytest.fixture
def fs(store: Persistence) -> FS:
    """A writable view of ``store`` after its init transaction."""
    return FS(store)


# ---------------------------------------------------------------- end of tinyfs fixtures


# ---------------------------------------------------------------- S3 (test_backup, test_s3_pond)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A real S3-compatible server (moto's) on loopback for this module's tests."""
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with S3Server.start(log_path) as server:
        server.log_path = log_path
        yield server


@pytest.fixture
def aws(s3, monkeypatch):
    """This process' AWS settings point at the test server (for in-process calls)."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in s3.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    return s3


@pytest.fixture
def url(aws) -> str:
    """``s3://<a new bucket>/field/noyo``: a prefix in an empty bucket of its own."""
    bucket = f"pond-{uuid.uuid4().hex[:12]}"
    aws.client().create_bucket(Bucket=bucket)
    return f"s3://{bucket}/field/noyo"


# ---------------------------------------------------------------- FUSE mounts (test_fuse*)


@pytest.fixture
def pond_path(tmp_path: Path) -> Path:
    """A new pond (just its root directory) under the test's tmp_path."""
    return make_pond(tmp_path / "pond")


@pytest.fixture
def mount(request: pytest.FixtureRequest, tmp_path: Path, pond_path: Path):
    """A read-write mount of a new pond (with the mount options an indirect parameter
    gives); after the test: unmounted, the daemon exited 0 and logged no warning or error."""
    m = Mount(pond_path, tmp_path / "mnt", options=getattr(request, "param", "")).start()
    try:
        yield m
    finally:
        status = m.stop()
    assert status == 0, m.log()
    assert m.problems() == []
