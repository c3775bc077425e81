"""Shared fixtures."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from fuse_helpers import Mount, make_pond
from s3_server import S3Server

from pondfs.tinyfs import FS, MemoryPersistence, Persistence

try:
    from pondfs.oplog import create_pond
except ImportError:  # the oplog has not landed yet
    create_pond = None

# ---------------------------------------------------------------- tinyfs fixtures (test_tinyfs)
# A pond store of each kind (in memory; a real Delta table under tmp_path), already holding
# the root directory (transaction 1, "init"), and a writable FS on it.


@pytest.fixture(params=["memory", "oplog"])
def store(request: pytest.FixtureRequest, tmp_path) -> Persistence:
    """An initialised pond store: transaction 1 made the root directory."""
    if request.param == "memory":
        made: Persistence = MemoryPersistence()
    else:
        if create_pond is None:
            pytest.skip("pondfs.oplog is not importable yet")
        made = create_pond(tmp_path / "pond")
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
