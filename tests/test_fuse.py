"""The pond through a real FUSE mount (mount.pondfs): POSIX behaviour, shell tools, the write
path's commits, read-only and time-travel mounts, mount errors.

Every test mounts a fresh pond with a daemon it owns (tests/fuse_helpers.py), and most end by
unmounting and reading the pond back without FUSE, so what the tools saw is what was stored.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from fuse_helpers import MOUNT_COMMAND, Mount, make_pond, requires_fuse

from pondfs import pond
from pondfs.tinyfs import DIRECTORY, FILE, SYMLINK, read_all

pytestmark = requires_fuse


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture
def pond_path(tmp_path: Path) -> Path:
    return make_pond(tmp_path / "pond")


@pytest.fixture
def mount(tmp_path: Path, pond_path: Path):
    """A read-write mount of a new pond; after the test: unmounted, the daemon exited 0 and
    logged no warning or error."""
    m = Mount(pond_path, tmp_path / "mnt").start()
    try:
        yield m
    finally:
        status = m.stop()
    assert status == 0, m.log()
    assert m.problems() == []


def run(*command: str, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run a shell tool; fail the test with its stderr if it fails."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
    return done


def host_tree(root: Path) -> dict[str, object]:
    """Relative path -> bytes (files), ("link", target) or "dir", for a host directory."""
    tree: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = str(full.relative_to(root))
            if full.is_symlink():
                tree[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                tree[rel] = "dir"
            else:
                tree[rel] = full.read_bytes()
    return tree


def pond_tree(pond_path: Path, under: str = "/") -> dict[str, object]:
    """The same shape as :func:`host_tree`, read from the pond without FUSE."""
    tree: dict[str, object] = {}
    with pond.open_fs(str(pond_path)) as fs:
        base = under.rstrip("/")
        for path, node_id in fs.walk(under):
            if path == under or path == base:
                continue
            rel = path[len(base) + 1:]
            kind = fs.kind(node_id)
            if kind == DIRECTORY:
                tree[rel] = "dir"
            elif kind == SYMLINK:
                tree[rel] = ("link", fs.readlink(node_id))
            else:
                assert kind == FILE
                tree[rel] = read_all(fs, node_id)
    return tree


def transactions(pond_path: Path) -> list:
    with pond.open_fs(str(pond_path)) as fs:
        return fs.transactions()


def make_source(root: Path) -> Path:
    """A small tree with text, binary, empty, large (not inline) files and symlinks."""
    rng = random.Random(7)
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "hello.txt").write_text("hello, pond\n")
    (root / "empty").write_bytes(b"")
    (root / "sub" / "binary.bin").write_bytes(rng.randbytes(5000))
    (root / "sub" / "deeper" / "large.bin").write_bytes(rng.randbytes(300_000))
    (root / "sub" / "deeper" / "exactly-64k").write_bytes(rng.randbytes(64 * 1024))
    (root / "link").symlink_to("sub/binary.bin")
    (root / "dangling").symlink_to("no/such/target")
    for i in range(30):
        (root / "sub" / f"note-{i:02}.txt").write_text(f"note {i}\n" * i)
    return root


# ---------------------------------------------------------------- basic operations

def test_write_read_and_the_pond_keeps_it(mount: Mount, pond_path: Path) -> None:
    path = mount.path("a.txt")
    path.write_text("hello\n")
    assert path.read_text() == "hello\n"
    with open(path, "a") as f:
        f.write("more\n")
    assert path.read_text() == "hello\nmore\n"
    info = path.stat()
    assert info.st_size == 11
    assert stat.S_ISREG(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o666 & ~_umask()
    assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())
    mount.path("d", "e").mkdir(parents=True)
    assert sorted(os.listdir(mount.mountpoint)) == ["a.txt", "d"]
    os.rename(path, mount.path("d", "b.txt"))
    assert not path.exists()
    assert mount.path("d", "b.txt").read_text() == "hello\nmore\n"
    mount.stop()
    assert pond_tree(pond_path) == {"d": "dir", "d/e": "dir", "d/b.txt": b"hello\nmore\n"}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_cp_r_is_a_few_commits_and_byte_identical(mount: Mount, pond_path: Path,
                                                  tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    before = len(transactions(pond_path))
    run("cp", "-r", str(source), str(mount.path("copy")))
    assert host_tree(mount.path("copy")) == host_tree(source)
    run("diff", "-r", "--no-dereference", str(source), str(mount.path("copy")))
    mount.stop()
    assert pond_tree(pond_path, "/copy") == host_tree(source)
    assert len(transactions(pond_path)) - before <= 5


def test_unmount_by_signal_commits_everything(tmp_path: Path, pond_path: Path) -> None:
    m = Mount(pond_path, tmp_path / "mnt", options="commit_interval=3600").start()
    try:
        m.path("late.txt").write_text("written just before SIGTERM\n")
        m.path("dir").mkdir()
        assert m.process is not None
        m.process.send_signal(signal.SIGTERM)
        assert m.process.wait(timeout=30) == 0
        assert not os.path.ismount(m.mountpoint)
    finally:
        m.stop()
    assert pond_tree(pond_path) == {"late.txt": b"written just before SIGTERM\n", "dir": "dir"}
    assert m.problems() == []


def test_fsync_returns_after_its_data_is_committed(tmp_path: Path, pond_path: Path) -> None:
    m = Mount(pond_path, tmp_path / "mnt", options="commit_interval=3600").start()
    try:
        fd = os.open(m.path("durable"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, b"must survive")
        os.fsync(fd)
        # Another reader of the pond (no lock needed) already sees it, while still open.
        assert pond_tree(pond_path) == {"durable": b"must survive"}
        os.close(fd)
    finally:
        assert m.stop() == 0
    assert m.problems() == []


def test_many_closes_are_grouped_into_few_commits(mount: Mount, pond_path: Path) -> None:
    before = len(transactions(pond_path))
    for i in range(300):
        mount.path(f"f{i:03}").write_bytes(b"x" * i)
    mount.stop()
    made = len(transactions(pond_path)) - before
    assert 1 <= made <= 10
    tree = pond_tree(pond_path)
    assert len(tree) == 300 and tree["f299"] == b"x" * 299


# ---------------------------------------------------------------- read-only mounts

def test_read_only_and_time_travel_mounts_refuse_writes(tmp_path: Path, pond_path: Path
                                                        ) -> None:
    rw = Mount(pond_path, tmp_path / "mnt").start()
    rw.path("f").write_text("first\n")
    assert rw.stop() == 0
    first = transactions(pond_path)[0].txn
    rw.start()
    rw.path("f").write_text("second\n")
    rw.path("g").write_text("new\n")
    assert rw.stop() == 0

    for options, expected in (("ro", {"f": b"second\n", "g": b"new\n"}),
                              (f"ro,at={first}", {"f": b"first\n"}),
                              (f"at={first}", {"f": b"first\n"})):
        m = Mount(pond_path, tmp_path / "ro", options=options).start()
        try:
            assert {p.name: p.read_bytes() for p in m.mountpoint.iterdir()} == expected
            for attempt in _writes(m.mountpoint):
                with pytest.raises(OSError) as caught:
                    attempt()
                assert caught.value.errno == errno.EROFS, options
        finally:
            assert m.stop() == 0
        assert m.problems() == []


def _writes(root: Path) -> list:
    """Ways to change ``root/f`` or ``root``, each a callable."""
    return [lambda: (root / "f").write_text("x"),
            lambda: (root / "new").write_text("x"),
            lambda: (root / "dir").mkdir(),
            lambda: (root / "f").unlink(),
            lambda: os.chmod(root / "f", 0o600),
            lambda: os.truncate(root / "f", 0),
            lambda: os.setxattr(root / "f", "user.x", b"1")]


# ---------------------------------------------------------------- mount.pondfs itself

def mount_pondfs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MOUNT_COMMAND, *args], capture_output=True, text=True,
                          timeout=120)


def test_background_mount_returns_once_it_answers(tmp_path: Path, pond_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log = tmp_path / "daemon.log"
    done = mount_pondfs(str(pond_path), str(mountpoint), "-o", f"log={log}")
    try:
        assert done.returncode == 0, done.stderr
        assert os.path.ismount(mountpoint)
        (mountpoint / "x").write_text("y")
        holder = (pond_path / "lock").read_text()
        assert f"mounted read-write at {mountpoint}" in holder
        pid = int(holder.split()[1])
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True)
    _wait_for_exit(pid)
    assert pond_tree(pond_path) == {"x": b"y"}
    assert "Traceback" not in log.read_text()


def _wait_for_exit(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"daemon {pid} did not exit")


def test_mount_errors_are_one_line_and_nonzero(tmp_path: Path, pond_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "something").write_text("x")

    done = mount_pondfs(str(pond_path), str(tmp_path / "missing"))
    assert done.returncode == 32 and "does not exist" in done.stderr
    done = mount_pondfs(str(pond_path), str(full))
    assert done.returncode == 32 and "not empty" in done.stderr
    done = mount_pondfs(str(tmp_path / "no-pond"), str(empty))
    assert done.returncode == 32 and "no such pond" in done.stderr
    done = mount_pondfs(str(full), str(empty))
    assert done.returncode == 32 and "not a pond" in done.stderr
    done = mount_pondfs(str(pond_path), str(empty), "-o", "bogus")
    assert done.returncode == 1 and "unknown mount option 'bogus'" in done.stderr
    for done in (mount_pondfs(str(pond_path)),):
        assert done.returncode == 1 and "usage" in done.stderr
    assert not os.path.ismount(empty)

    holder = Mount(pond_path, tmp_path / "mnt").start()
    try:
        done = mount_pondfs(str(pond_path), str(empty))
        assert done.returncode == 32
        assert f"mounted read-write at {holder.mountpoint}" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        done = mount_pondfs(str(pond_path), str(holder.mountpoint), "-o", "ro")
        assert done.returncode == 32 and "already a mount point" in done.stderr
        # Readers need no lock: a read-only mount works beside the writer.
        reader = Mount(pond_path, tmp_path / "reader", options="ro").start()
        assert reader.stop() == 0
    finally:
        assert holder.stop() == 0
    assert not os.path.ismount(empty)
