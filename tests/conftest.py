"""Shared fixtures."""

from __future__ import annotations

import pytest

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
