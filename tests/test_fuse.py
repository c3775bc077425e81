"""The pond through a real FUSE mount (mount.pondfs): POSIX behaviour, shell tools, the write
path's commits, read-only and time-travel mounts, mount errors.

Every test mounts a fresh pond with a daemon it owns (tests/fuse_helpers.py), and most end by
unmounting and reading the pond back without FUSE, so what the tools saw is what was stored.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import chdir
from pathlib import Path

import pytest
from fuse_helpers import MOUNT_COMMAND, Mount, check, pond_tree
from shapes import make_linked_source, shape

from pondfs import pond
from pondfs.fuse.stats import counts_in_log
from pondfs.tinyfs import ROOT_ID, read_all

pytestmark = pytest.mark.fuse


# ---------------------------------------------------------------- fixtures and helpers

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


def _overwrite_by_every_path(root: Path) -> dict[str, object]:
    """Overwrite existing files the ways tools do (shell ``>``, ``cp``, ``open("wb")``,
    ``O_RDONLY|O_TRUNC``, an ``O_TRUNC`` open that writes nothing) under ``root``: what
    each file then holds, and whether its mtime and ctime moved."""
    seen: dict[str, object] = {}
    for name in ("shell", "cp", "wb", "rdonly", "nothing"):
        (root / name).write_bytes(b"hello world\n" * 100)
    seq = root.parent / (root.name + "-ten")
    seq.write_bytes(b"".join(b"%d\n" % i for i in range(1, 11)))
    before = {name: os.stat(root / name) for name in ("shell", "cp", "wb", "rdonly", "nothing")}
    time.sleep(0.02)
    run("sh", "-c", "printf 'bye\\n' > shell", cwd=root)
    run("cp", str(seq), str(root / "cp"))
    with open(root / "wb", "wb") as f:
        f.write(b"new")
    fd = os.open(root / "rdonly", os.O_RDONLY | os.O_TRUNC)
    seen["rdonly read"] = os.read(fd, 100)
    os.close(fd)
    os.close(os.open(root / "nothing", os.O_WRONLY | os.O_TRUNC))
    for name, old in before.items():
        new = os.stat(root / name)
        seen[name] = ((root / name).read_bytes(), new.st_size,
                      new.st_mtime_ns > old.st_mtime_ns, new.st_ctime_ns > old.st_ctime_ns)
    return seen


def test_open_with_o_trunc_truncates_an_existing_file(mount: Mount, pond_path: Path,
                                                       tmp_path: Path) -> None:
    """Regression: the kernel passes O_TRUNC to open (atomic O_TRUNC) and sends no truncate;
    ``>`` over a longer file kept its tail. The host filesystem is the reference."""
    host = tmp_path / "host"
    host.mkdir()
    expected = _overwrite_by_every_path(host)
    assert expected["shell"][0] == b"bye\n"  # the reference behaves as the issue says
    work = mount.path("work")
    work.mkdir()
    assert _overwrite_by_every_path(work) == expected
    mount.stop()
    stored = pond_tree(pond_path, "/work")
    assert {name: stored[name] for name in ("shell", "cp", "wb", "rdonly", "nothing")} == {
        name: expected[name][0] for name in ("shell", "cp", "wb", "rdonly", "nothing")}
    check(pond_path)


FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 0x01, 0x02, 0x10


def _fallocate(fd: int, mode: int, offset: int, length: int) -> int | str:
    """fallocate(2) (os has only posix_fallocate): 0, or the errno's name."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.fallocate(fd, mode, ctypes.c_long(offset), ctypes.c_long(length)) == 0:
        return 0
    return errno.errorcode[ctypes.get_errno()]


def _outcome(call) -> object:
    try:
        return call()
    except OSError as exc:
        return errno.errorcode[exc.errno]


def _open_flags(root: Path) -> dict[str, object]:
    """Open flags and the calls around them, done under ``root``; what each one gave."""
    seen: dict[str, object] = {}
    a1 = os.open(root / "log", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    a2 = os.open(root / "log", os.O_WRONLY | os.O_APPEND)
    for i in range(5):
        os.pwrite(a1, b"one%d " % i, 0)  # O_APPEND: the offset is ignored (as Linux)
        os.write(a2, b"two%d " % i)
    os.close(a1)
    os.close(a2)
    seen["append"] = (root / "log").read_bytes()
    seen["excl"] = _outcome(lambda: os.open(root / "log", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    old = os.umask(0o027)
    try:
        os.close(os.open(root / "masked", os.O_CREAT | os.O_WRONLY, 0o777))
        os.mkdir(root / "masked-dir", 0o777)
    finally:
        os.umask(old)
    seen["umask"] = (oct(os.stat(root / "masked").st_mode),
                     oct(os.stat(root / "masked-dir").st_mode))
    for name, flag in (("direct", os.O_DIRECT), ("noatime", os.O_NOATIME), ("sync", os.O_SYNC),
                       ("dsync", os.O_DSYNC)):
        fd = os.open(root / name, os.O_CREAT | os.O_RDWR | flag, 0o644)
        data = b"%s\n" % name.encode() * 1024  # 4 KiB multiples: O_DIRECT alignment
        buf = mmap.mmap(-1, 8192)  # page-aligned, for O_DIRECT
        buf.write(data[:8192].ljust(8192, b"."))
        back = mmap.mmap(-1, 4096)
        seen[name] = (os.write(fd, buf), os.preadv(fd, [back], 4096), back[:16],
                      os.fstat(fd).st_size)
        os.close(fd)
    fd = os.open(root / "alloc", os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, b"0123456789")
    os.posix_fallocate(fd, 0, 300_000)
    seen["posix_fallocate"] = (os.fstat(fd).st_size, os.pread(fd, 20, 0))
    os.close(fd)
    with open(root / "src", "wb") as f:
        f.write(b"head")
        f.seek(1 << 20)
        f.write(b"tail")
    src = os.open(root / "src", os.O_RDONLY)
    dst = os.open(root / "dst", os.O_CREAT | os.O_WRONLY, 0o644)
    seen["copy_file_range"] = os.copy_file_range(src, dst, 2 << 20)
    os.close(src)
    os.close(dst)
    seen["copied"] = (root / "dst").read_bytes() == (root / "src").read_bytes()
    return seen


def test_open_flags_and_file_calls_match_the_host(mount: Mount, tmp_path: Path) -> None:
    """O_APPEND from two handles, O_EXCL, the create mode under the umask, O_DIRECT,
    O_NOATIME, O_SYNC, O_DSYNC, posix_fallocate and copy_file_range give what the host
    filesystem gives."""
    host = tmp_path / "host"
    host.mkdir()
    assert _open_flags(mount.mountpoint) == _open_flags(host)


def test_fallocate_and_seek_hole_answer_as_the_readme_says(mount: Mount) -> None:
    """Refused (README): fallocate(2) is EOPNOTSUPP in every mode (pyfuse3 has no fallocate
    handler; posix_fallocate falls back to writing, see above), and files have no holes:
    SEEK_DATA finds data at once, SEEK_HOLE only at the end."""
    fd = os.open(mount.path("f"), os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, b"x", 1 << 20)
    for mode in (0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
                 FALLOC_FL_ZERO_RANGE):
        assert _fallocate(fd, mode, 0, 4096) == errno.errorcode[errno.EOPNOTSUPP]
    assert os.fstat(fd).st_size == (1 << 20) + 1
    assert os.lseek(fd, 0, os.SEEK_DATA) == 0
    assert os.lseek(fd, 0, os.SEEK_HOLE) == (1 << 20) + 1
    assert _outcome(lambda: os.lseek(fd, (1 << 20) + 1, os.SEEK_DATA)) == "ENXIO"
    os.close(fd)


def test_an_o_sync_write_is_durable_when_it_returns(tmp_path: Path, pond_path: Path) -> None:
    m = Mount(pond_path, tmp_path / "mnt", options="commit_interval=3600").start()
    fd = os.open(m.path("synced"), os.O_CREAT | os.O_WRONLY | os.O_SYNC, 0o644)
    os.write(fd, b"durable on return")
    m.kill()
    with pytest.raises(OSError):
        os.close(fd)
    assert pond_tree(pond_path) == {"synced": b"durable on return"}
    check(pond_path)


def _removed_directories(root: Path) -> list[object]:
    """A directory removed while open, or while a process is in it, or renamed over while
    open: what fstat, listing and stat of '.' then give."""
    seen: list[object] = []
    for name in ("open", "cwd", "replaced"):
        (root / name).mkdir()
    fd = os.open(root / "open", os.O_RDONLY)
    os.rmdir(root / "open")
    info = os.fstat(fd)
    seen += [stat.S_IFMT(info.st_mode), info.st_nlink, os.listdir(fd)]
    os.close(fd)
    fd = os.open(root / "replaced", os.O_RDONLY)
    (root / "new").mkdir()
    os.rename(root / "new", root / "replaced")
    seen += [os.fstat(fd).st_nlink, os.listdir(fd), os.path.isdir(root / "replaced")]
    os.close(fd)
    here = os.getcwd()
    os.chdir(root / "cwd")
    try:
        os.rmdir(root / "cwd")
        seen += [os.stat(".").st_nlink, os.listdir("."),
                 _outcome(lambda: os.mkdir("inside"))]
    finally:
        os.chdir(here)
    return seen


def test_a_removed_directory_still_open_is_empty_as_on_the_host(mount: Mount,
                                                                tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    assert _removed_directories(mount.mountpoint) == _removed_directories(host)


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
    check(pond_path)


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


def test_unmount_logs_how_many_requests_of_each_kind_it_served(mount: Mount) -> None:
    for i in range(20):
        mount.path(f"f{i:02}").write_bytes(b"x" * 100)
    mount.path("f00").rename(mount.path("renamed"))
    assert mount.stop() == 0
    counts = counts_in_log(mount.log().splitlines())
    assert counts is not None
    assert counts["create"] == 20 and counts["rename"] == 1
    assert counts["write"] >= 20 and counts["release"] == 20
    assert mount.problems() == []


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
                              (f"at={first}", {"f": b"first\n"})):  # at= implies ro
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


POND_COMMAND = [sys.executable, "-m", "pondfs.cli"]


def pond_cli(pond_path: Path, *args: str) -> None:
    run(*POND_COMMAND, "--pond", str(pond_path), *args)


def test_a_read_only_mount_follows_the_pond(tmp_path: Path, pond_path: Path) -> None:
    """Transactions of other writers show in a read-only mount within about a second,
    through the kernel's caches (entries, attributes, pages, a name it knows is missing);
    an at= mount stays where it is."""
    with pond.open_fs(str(pond_path), write=True) as fs:
        fs.write_content(fs.create(ROOT_ID, "f"), [b"first\n"])
        fs.mkdir(ROOT_ID, "d")
        first = fs.commit("set up")
    ro = Mount(pond_path, tmp_path / "ro", options="ro").start()
    at = Mount(pond_path, tmp_path / "at", options=f"at={first}").start()
    try:
        for m in (ro, at):
            assert m.path("f").read_bytes() == b"first\n"
            assert sorted(os.listdir(m.path("d"))) == []
            assert not m.path("g").exists()  # the kernel now caches that g is missing
        source = tmp_path / "src"
        source.mkdir()
        for name in ("f", "g"):
            (source / name).write_bytes(b"second, longer\n")
        pond_cli(pond_path, "cp", str(source / "f"), str(source / "g"), "/")
        with pond.open_fs(str(pond_path), write=True) as fs:
            fs.create(fs.resolve("/d"), "x")
            fs.commit("another writer")
        expected = {"f": b"second, longer\n", "g": b"second, longer\n", "d": ["x"]}
        deadline = time.monotonic() + 10  # ~1 s when the machine is not loaded
        while True:
            seen = {name: ro.path(name).read_bytes() for name in ("f", "g")
                    if ro.path(name).exists()}
            seen["d"] = os.listdir(ro.path("d"))
            if seen == expected or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert seen == expected
        assert ro.path("f").stat().st_size == len(expected["f"])
        assert at.path("f").read_bytes() == b"first\n"
        assert not at.path("g").exists()
    finally:
        assert (ro.stop(), at.stop()) == (0, 0)
    assert ro.problems() == [] and at.problems() == []


def _eventually(probe: Callable[[], object], expected: object, seconds: float = 10) -> None:
    """``probe()`` returns ``expected`` within ``seconds`` (~1 s on an idle machine)."""
    deadline = time.monotonic() + seconds
    while (seen := probe()) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert seen == expected


def test_a_read_write_mount_and_pond_commands_write_at_once(tmp_path: Path, pond_path: Path
                                                            ) -> None:
    """The writer lock is held per commit: pond commands write while the pond is mounted
    read-write, the mount shows their transactions (through the kernel's caches), its own
    uncommitted changes win until they commit, and an open handle keeps its version."""
    m = Mount(pond_path, tmp_path / "mnt", options="commit_interval=0.2").start()
    try:
        m.path("f").write_bytes(b"mount's first\n")
        m.path("mine").mkdir()
        _eventually(lambda: pond_tree(pond_path).get("f"), b"mount's first\n")
        assert not m.path("theirs").exists()  # the kernel now caches that it is missing
        with open(m.path("f"), "rb") as held:
            source = tmp_path / "src"
            source.write_bytes(b"the pond command's\n")
            pond_cli(pond_path, "mkdir", "/theirs")
            pond_cli(pond_path, "cp", str(source), "/f")
            pond_cli(pond_path, "cp", str(source), "/mine/from-pond")
            _eventually(lambda: sorted(os.listdir(m.mountpoint)), ["f", "mine", "theirs"])
            # Read before another handle reads the new version into the kernel's page
            # cache of the file (one per inode, shared by its handles).
            # The version it opened (the kernel, knowing the newer, longer size, pads
            # the short read with zeros: a limit of following under an open handle).
            assert held.read().rstrip(b"\0") == b"mount's first\n"
        _eventually(lambda: m.path("f").read_bytes(), b"the pond command's\n")
        assert m.path("f").stat().st_size == len(b"the pond command's\n")
        _eventually(lambda: os.listdir(m.path("mine")), ["from-pond"])
        # The mount's own change, not committed yet, wins over one it follows meanwhile.
        with open(m.path("f"), "wb") as out:
            out.write(b"mount's second\n")
            out.flush()
            pond_cli(pond_path, "mkdir", "/theirs/too")
            _eventually(lambda: os.listdir(m.path("theirs")), ["too"])
            assert m.path("f").read_bytes() == b"mount's second\n"
        m.path("theirs", "too", "from-mount").write_bytes(b"m")
    finally:
        assert m.stop() == 0
    assert m.problems() == []
    tree = pond_tree(pond_path)
    assert tree["f"] == b"mount's second\n" and tree["mine/from-pond"] == source.read_bytes()
    assert tree["theirs/too/from-mount"] == b"m"
    check(pond_path)


def test_cp_r_in_a_mount_while_pond_commands_write_every_second(tmp_path: Path,
                                                               pond_path: Path) -> None:
    """Issue 13's test at a small scale: everything every writer wrote is there after."""
    source = tmp_path / "tree"
    for d in range(10):
        (source / f"d{d}").mkdir(parents=True)
        for f in range(30):
            (source / f"d{d}" / f"f{f}").write_bytes(f"{d}/{f}\n".encode() * (f + 1))
    m = Mount(pond_path, tmp_path / "mnt").start()
    try:
        copying = subprocess.Popen(["cp", "-r", str(source), str(m.path("copy"))])
        made = []
        while copying.poll() is None or len(made) < 3:
            name = f"cli{len(made)}"
            pond_cli(pond_path, "mkdir", f"/{name}")
            pond_cli(pond_path, "cp", str(source / "d0" / "f1"), f"/{name}/f")
            made.append(name)
            time.sleep(1)
        assert copying.wait() == 0
    finally:
        assert m.stop() == 0
    assert m.problems() == []
    tree = pond_tree(pond_path)
    for path in source.rglob("*"):
        if path.is_file():
            assert tree[f"copy/{path.relative_to(source)}"] == path.read_bytes()
    for name in made:
        assert tree[f"{name}/f"] == (source / "d0" / "f1").read_bytes()
    commands = [t.command for t in transactions(pond_path)]
    assert any(c.startswith("mount ") for c in commands) and \
        sum(" mkdir /cli" in c for c in commands) == len(made)
    check(pond_path)


WRITER_AFTER_UMOUNT = """
import sys, time
from pondfs import pond
from pondfs.tinyfs import ROOT_ID
print("ready", flush=True)
sys.stdin.readline()
start = time.monotonic()
with pond.open_fs(sys.argv[1], write=True, holder="test writer") as fs:
    print(f"waited {time.monotonic() - start:.3f}", flush=True)
    fs.write_content(fs.create(ROOT_ID, "after"), [b"after\\n"])
    fs.commit("after")
"""


def test_a_pond_write_right_after_umount_waits_for_the_final_commit(
        tmp_path: Path, pond_path: Path) -> None:
    """umount returns before the daemon's last commit; a writer started at once waits for
    the mount to finish (the lock tells it so) instead of failing."""
    m = Mount(pond_path, tmp_path / "mnt", options="commit_interval=60").start()
    writer = subprocess.Popen([sys.executable, "-c", WRITER_AFTER_UMOUNT, str(pond_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"  # imported: no start-up delay
        for i in range(300):  # all committed at unmount
            m.path(f"f{i}").write_bytes(b"x" * i)
        run("fusermount3", "-u", str(m.mountpoint))
        out, err = writer.communicate("go\n", timeout=60)
        assert writer.returncode == 0, err
        assert out.startswith("waited ")
    finally:
        writer.kill()
        assert m.stop() == 0
    assert m.problems() == []
    with pond.open_fs(str(pond_path)) as fs:
        assert len(fs.listdir(ROOT_ID)) == 301
        assert read_all(fs, fs.resolve("/after")) == b"after\n"
        assert read_all(fs, fs.resolve("/f299")) == b"x" * 299


def _writes(root: Path) -> list:
    """Ways to change ``root/f`` or ``root``, each a callable."""
    return [lambda: (root / "f").write_text("x"),
            lambda: (root / "new").write_text("x"),
            lambda: (root / "dir").mkdir(),
            lambda: (root / "f").unlink(),
            lambda: os.chmod(root / "f", 0o600),
            lambda: os.truncate(root / "f", 0),
            lambda: os.close(os.open(root / "f", os.O_RDONLY | os.O_TRUNC)),
            lambda: os.setxattr(root / "f", "user.x", b"1")]


# ---------------------------------------------------------------- mount.pondfs itself

def mount_pondfs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MOUNT_COMMAND, *args], capture_output=True, text=True,
                          timeout=120)


def daemon_pid(log: Path) -> int:
    """The pid of the mount daemon writing ``log`` (its lines name it after the time)."""
    return int(log.read_text().split()[2])


def test_background_mount_returns_once_it_answers(tmp_path: Path, pond_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log = tmp_path / "daemon.log"
    done = mount_pondfs(str(pond_path), str(mountpoint), "-o", f"log={log}")
    try:
        assert done.returncode == 0, done.stderr
        assert os.path.ismount(mountpoint)
        (mountpoint / "x").write_text("y")
        pid = daemon_pid(log)
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


HELPER_LINK = Path("/sbin/mount.pondfs")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"),
                    reason="mount(8) with a helper in /sbin needs root")
def test_mount_t_pondfs_runs_the_helper(tmp_path: Path, pond_path: Path) -> None:
    """mount(8) runs /sbin/mount.pondfs SPEC DIR -o OPTIONS (as README tells to link it)."""
    script = Path(sys.executable).parent / "mount.pondfs"
    made_link = not HELPER_LINK.exists()
    if made_link:
        HELPER_LINK.symlink_to(script)
    elif HELPER_LINK.resolve() != script.resolve():
        pytest.skip(f"{HELPER_LINK} is another helper")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log = tmp_path / "daemon.log"
    pid = None
    try:
        done = subprocess.run(["mount", "-t", "pondfs", "-o", f"noatime,log={log}",
                               str(pond_path), str(mountpoint)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert os.path.ismount(mountpoint)
        pid = daemon_pid(log)
        (mountpoint / "x").write_text("y")
        assert "pondfs" in run("findmnt", "-n", "-o", "FSTYPE", str(mountpoint)).stdout
    finally:
        if made_link:
            HELPER_LINK.unlink()
        subprocess.run(["umount", str(mountpoint)], capture_output=True)
    if pid is not None:
        _wait_for_exit(pid)
    assert pond_tree(pond_path) == {"x": b"y"}
    assert "Traceback" not in log.read_text()


def _read_ahead_kb(mountpoint: Path, expected: int) -> int:
    """The mount's read-ahead once it is ``expected`` or 10 s passed (the daemon sets it
    just after the mount starts to answer)."""
    info = os.stat(mountpoint)
    setting = Path(f"/sys/class/bdi/{os.major(info.st_dev)}:{os.minor(info.st_dev)}"
                   "/read_ahead_kb")
    deadline = time.monotonic() + 10
    while (kib := int(setting.read_text())) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return kib


def test_a_mount_sets_its_kernel_read_ahead(tmp_path: Path, pond_path: Path) -> None:
    """4 MiB by default (FUSE's own 128 KiB makes sequential cold reads ~3x slower), or what
    readahead_kb= asks for."""
    m = Mount(pond_path, tmp_path / "default", options="ro").start()
    try:
        assert _read_ahead_kb(m.mountpoint, 4096) == 4096
    finally:
        assert m.stop() == 0
    m = Mount(pond_path, tmp_path / "asked", options="ro,readahead_kb=512").start()
    try:
        assert _read_ahead_kb(m.mountpoint, 512) == 512
    finally:
        assert m.stop() == 0


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
    done = mount_pondfs(str(pond_path), str(empty), "-o", "readahead_kb=lots")
    assert done.returncode == 1 and "readahead_kb= needs a number of KiB" in done.stderr
    for done in (mount_pondfs(str(pond_path)),):
        assert done.returncode == 1 and "usage" in done.stderr
    assert not os.path.ismount(empty)

    holder = Mount(pond_path, tmp_path / "mnt").start()
    try:
        # Several writers: a second read-write mount works beside the first.
        second = Mount(pond_path, empty).start()
        assert second.stop() == 0
        done = mount_pondfs(str(pond_path), str(holder.mountpoint), "-o", "ro")
        assert done.returncode == 32 and "already a mount point" in done.stderr
        # Readers need no lock: a read-only mount works beside the writer.
        reader = Mount(pond_path, tmp_path / "reader", options="ro").start()
        assert reader.stop() == 0
    finally:
        assert holder.stop() == 0
    assert not os.path.ismount(empty)


# ---------------------------------------------------------------- shell tools

def test_shell_tools(mount: Mount, pond_path: Path, tmp_path: Path) -> None:
    root = mount.mountpoint
    sh = lambda script: run("bash", "-euo", "pipefail", "-c", script, cwd=root)  # noqa: E731
    sh("mkdir -p a/b/c && echo one > a/b/c/f && echo two >> a/b/c/f")
    assert (root / "a/b/c/f").read_text() == "one\ntwo\n"
    sh("ln -s b/c/f a/link && test \"$(cat a/link)\" = \"$(printf 'one\\ntwo')\"")
    assert os.readlink(root / "a/link") == "b/c/f"
    sh("touch -d '2020-01-02 03:04:05' a/old && touch a/b/c/f")
    assert (root / "a/old").stat().st_mtime == time.mktime((2020, 1, 2, 3, 4, 5, 0, 0, -1))
    sh("truncate -s 10 a/b/c/f && truncate -s 3 a/old")
    assert (root / "a/b/c/f").read_bytes() == b"one\ntwo\n\0\0"
    assert (root / "a/old").read_bytes() == b"\0\0\0"
    sh("dd if=/dev/urandom of=a/random bs=64k count=5 status=none")
    sh("dd if=/dev/zero of=a/random bs=1k seek=3 count=1 conv=notrunc status=none")
    random_bytes = (root / "a/random").read_bytes()
    assert len(random_bytes) == 5 * 65536 and random_bytes[3072:4096] == bytes(1024)
    sh("printf 'alpha\\nbeta\\ngamma\\n' > a/text && sed -i 's/beta/BETA/' a/text")
    assert (root / "a/text").read_text() == "alpha\nBETA\ngamma\n"
    sh("mv a/text a/b/moved && cp a/b/moved a/copied && mv a/b/c a/c2")
    sh("tar cf " + str(tmp_path / "a.tar") + " a")
    sh("mkdir x && tar xf " + str(tmp_path / "a.tar") + " -C x && diff -r --no-dereference a x/a")
    sh("rm -r x && rm a/old && rmdir a/b/c 2>/dev/null || true")
    names = [line.split()[-1] for line in sh("ls -la a").stdout.splitlines()[1:]]
    assert names[:2] == [".", ".."] and "random" in names
    assert os.stat(root / "a" / ".").st_ino == os.stat(root / "a").st_ino
    expected = host_tree(root / "a")
    mount.stop()
    assert pond_tree(pond_path, "/a") == expected
    assert "x" not in pond_tree(pond_path)


def test_tar_round_trip_keeps_modes_and_times(mount: Mount, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    os.chmod(source / "hello.txt", 0o640)
    os.utime(source / "sub" / "binary.bin", ns=(1_600_000_000_000_000_000,) * 2)
    run("tar", "cf", str(tmp_path / "src.tar"), "-C", str(tmp_path), "src")
    run("tar", "xpf", str(tmp_path / "src.tar"), "-C", str(mount.mountpoint))
    got = mount.path("src")
    assert host_tree(got) == host_tree(source)
    assert stat.S_IMODE(os.stat(got / "hello.txt").st_mode) == 0o640
    assert os.stat(got / "sub" / "binary.bin").st_mtime_ns == 1_600_000_000_000_000_000
    run("tar", "cf", str(tmp_path / "back.tar"), "-C", str(mount.mountpoint), "src")
    out = tmp_path / "back"
    out.mkdir()
    run("tar", "xf", str(tmp_path / "back.tar"), "-C", str(out))
    assert host_tree(out / "src") == host_tree(source)


def test_rsync_then_checksum_rsync_finds_nothing(mount: Mount, pond_path: Path,
                                                 tmp_path: Path) -> None:
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed (scripts/setup installs it)")
    source = make_source(tmp_path / "src")
    run("rsync", "-a", f"{source}/", str(mount.path("dst")) + "/")
    changes = run("rsync", "-anc", "--itemize-changes", f"{source}/",
                  str(mount.path("dst")) + "/").stdout
    assert changes.strip() == ""
    mount.stop()
    assert pond_tree(pond_path, "/dst") == host_tree(source)
    mount.start()
    changes = run("rsync", "-anc", "--itemize-changes", f"{source}/",
                  str(mount.path("dst")) + "/").stdout
    assert changes.strip() == ""


def test_git_works_in_the_mount(mount: Mount, pond_path: Path) -> None:
    repo = mount.path("repo")
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
           "HOME": str(mount.mountpoint)}
    git = lambda *a: run("git", *a, cwd=repo, env=env).stdout  # noqa: E731
    git("init", "-q", "-b", "main")
    (repo / "README").write_text("pond notes\n")
    (repo / "data").mkdir()
    (repo / "data" / "values.csv").write_text("t,v\n1,2\n")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    (repo / "README").write_text("pond notes, edited\n")
    git("commit", "-q", "-am", "second")
    assert git("log", "--format=%s").split() == ["second", "first"]
    assert git("status", "--porcelain") == ""
    mount.stop()
    mount.start()
    assert git("status", "--porcelain") == ""
    assert git("show", "HEAD~1:README") == "pond notes\n"
    git("fsck", "--no-progress")


def test_shutil_copytree(mount: Mount, pond_path: Path, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    shutil.copytree(source, mount.path("tree"), symlinks=True)
    assert host_tree(mount.path("tree")) == host_tree(source)
    shutil.copytree(mount.path("tree"), tmp_path / "back", symlinks=True)
    assert host_tree(tmp_path / "back") == host_tree(source)
    shutil.rmtree(mount.path("tree"))
    assert os.listdir(mount.mountpoint) == []
    mount.stop()
    assert pond_tree(pond_path) == {}


# ---------------------------------------------------------------- POSIX details

def test_posix_details(mount: Mount) -> None:
    root = mount.mountpoint
    with pytest.raises(OSError) as caught:
        (root / ("n" * 256)).write_text("x")
    assert caught.value.errno == errno.ENAMETOOLONG
    with pytest.raises(OSError) as caught:
        os.stat(root / ("n" * 256))
    assert caught.value.errno == errno.ENAMETOOLONG
    (root / ("n" * 255)).write_text("longest name")
    assert os.statvfs(root).f_namemax == 255

    (root / "f").write_text("x")

    # Writing past the end leaves a hole of zeros; truncating up too.
    with open(root / "sparse", "wb") as f:
        f.seek(1_000_000)
        f.write(b"end")
    data = (root / "sparse").read_bytes()
    assert len(data) == 1_000_003 and data[:1_000_000] == bytes(1_000_000)
    os.truncate(root / "f", 100_000)
    assert (root / "f").read_bytes() == b"x" + bytes(99_999)

    # ctime moves on chmod; a directory's mtime and ctime on create and unlink.
    before = os.stat(root / "f")
    time.sleep(0.01)
    os.chmod(root / "f", 0o600)
    after = os.stat(root / "f")
    assert after.st_ctime_ns > before.st_ctime_ns
    assert stat.S_IMODE(after.st_mode) == 0o600
    (root / "d").mkdir()
    d0 = os.stat(root / "d")
    time.sleep(0.01)
    (root / "d" / "child").write_text("c")
    d1 = os.stat(root / "d")
    assert d1.st_mtime_ns > d0.st_mtime_ns and d1.st_ctime_ns > d0.st_ctime_ns
    time.sleep(0.01)
    (root / "d" / "child").unlink()
    assert os.stat(root / "d").st_mtime_ns > d1.st_mtime_ns

    # Link counts: 2 plus subdirectories.
    assert os.stat(root / "d").st_nlink == 2
    (root / "d" / "s1").mkdir()
    (root / "d" / "s2").mkdir()
    assert os.stat(root / "d").st_nlink == 4

    # rename over a file replaces it; over a non-empty directory fails.
    (root / "a").write_text("a")
    (root / "b").write_text("b")
    os.rename(root / "a", root / "b")
    assert (root / "b").read_text() == "a" and not (root / "a").exists()
    (root / "d" / "s1" / "inside").write_text("x")
    with pytest.raises(OSError) as caught:
        os.rename(root / "d" / "s2", root / "d" / "s1")
    assert caught.value.errno in (errno.ENOTEMPTY, errno.EEXIST)
    with pytest.raises(OSError) as caught:
        os.rmdir(root / "d" / "s1")
    assert caught.value.errno == errno.ENOTEMPTY


def test_open_file_survives_unlink_and_rename(mount: Mount, pond_path: Path) -> None:
    root = mount.mountpoint
    with open(root / "victim", "w+b") as f:
        f.write(b"still here")
        f.flush()
        os.unlink(root / "victim")
        f.seek(0)
        assert f.read() == b"still here"
        f.write(b", and more")
        f.seek(0)
        assert f.read() == b"still here, and more"
    with open(root / "moving", "wb") as f:
        f.write(b"first part ")
        f.flush()
        os.rename(root / "moving", root / "moved")
        f.write(b"second part")
    assert (root / "moved").read_bytes() == b"first part second part"
    mount.stop()
    assert pond_tree(pond_path) == {"moved": b"first part second part"}


def _names_left_by_open_files(root: Path) -> list[object]:
    """New files still open while their names are removed or moved and taken by others,
    and changes to them by descriptor; what fstat says along the way."""
    seen: list[object] = []

    def fstat(fd: int) -> tuple[int, ...]:
        s = os.fstat(fd)
        return s.st_mode, s.st_nlink, s.st_size, s.st_uid

    first = os.open(root / "a", os.O_WRONLY | os.O_CREAT, 0o644)
    os.truncate(root / "a", 10)
    os.unlink(root / "a")
    os.mkdir(root / "a")
    second = os.open(root / "b", os.O_RDWR | os.O_CREAT, 0o600)
    os.write(second, b"moved away")
    os.rename(root / "b", root / "a" / "moved")
    (root / "b").write_bytes(b"took the name")
    os.unlink(root / "a" / "moved")
    os.fchmod(second, 0o640)
    os.ftruncate(second, 5)
    os.fchown(second, -1, -1)
    seen += [fstat(first), fstat(second), os.pread(second, 100, 0)]
    os.close(first)
    os.close(second)
    return seen


def test_names_left_by_open_new_files_hold_what_took_them(mount: Mount, pond_path: Path,
                                                          tmp_path: Path) -> None:
    """What a new file still open leaves behind when its name goes to another node is the
    host's, live and in the pond (the held changes of the open file once replayed over the
    directory made in its place: the directory was lost at unmount)."""
    host = tmp_path / "host"
    host.mkdir()
    assert _names_left_by_open_files(mount.mountpoint) == _names_left_by_open_files(host)
    assert host_tree(mount.mountpoint) == host_tree(host)
    mount.stop()
    assert pond_tree(pond_path) == host_tree(host)
    check(pond_path)
    mount.start()


def test_extended_attributes(mount: Mount, pond_path: Path) -> None:
    f = mount.path("f")
    f.write_text("x")
    os.setxattr(f, "user.site", b"noyo")
    assert os.getxattr(f, "user.site") == b"noyo"
    assert os.listxattr(f) == ["user.site"]
    node_id = os.getxattr(f, "user.pond.node_id").decode()
    assert len(node_id) == 36
    assert int(os.getxattr(f, "user.pond.version")) >= 1
    for name in ("user.pond.node_id", "user.pond.version"):
        with pytest.raises(OSError) as caught:
            os.setxattr(f, name, b"1")
        assert caught.value.errno == errno.EPERM
    with pytest.raises(OSError) as caught:
        os.setxattr(f, "trusted.x", b"1")
    assert caught.value.errno == errno.ENOTSUP
    with pytest.raises(OSError) as caught:
        os.getxattr(f, "user.missing")
    assert caught.value.errno == errno.ENODATA
    os.removexattr(f, "user.site")
    assert os.listxattr(f) == []
    os.setxattr(f, "user.kept", b"\x00binary\xff")
    fd = os.open(f, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    txn = int(os.getxattr(f, "user.pond.txn"))
    assert txn == max(t.txn for t in transactions(pond_path))
    mount.stop()
    with pond.open_fs(str(pond_path)) as fs:
        assert fs.getxattr(fs.resolve("/f"), "user.kept") == b"\x00binary\xff"
        assert fs.resolve("/f") == node_id


# ---------------------------------------------------------------- random operations

def test_random_reads_writes_and_truncates_match_a_model(mount: Mount, pond_path: Path
                                                         ) -> None:
    """Thousands of random writes (some past the end), truncates (up and down), reads,
    reopens and fsyncs on a few files, checked against bytes kept in memory after every
    operation and again after a remount."""
    rng = random.Random(20240601)
    names = [f"file{i}" for i in range(4)]
    model = {name: bytearray() for name in names}
    fds: dict[str, int] = {}
    limit = 200_000  # crosses the inline/object boundary (64 KiB) both ways

    def reopen(name: str) -> None:
        if name in fds:
            os.close(fds.pop(name))
        fds[name] = os.open(mount.path(name), os.O_RDWR | os.O_CREAT, 0o644)

    for name in names:
        reopen(name)
    try:
        _random_operations(rng, mount, model, fds, reopen, limit)
    finally:
        for fd in fds.values():
            os.close(fd)
    mount.stop()
    assert pond_tree(pond_path) == {name: bytes(data) for name, data in model.items()}
    mount.start()
    for name, data in model.items():
        assert mount.path(name).read_bytes() == bytes(data)


def _random_operations(rng: random.Random, mount: Mount, model: dict[str, bytearray],
                       fds: dict[str, int], reopen, limit: int) -> None:
    names = sorted(model)
    done: list[str] = []
    for step in range(2000):
        name = rng.choice(names)
        data = model[name]
        fd = fds[name]
        op = rng.random()
        if op < 0.45:
            offset = rng.randrange(0, min(len(data) + 20_000, limit))
            chunk = rng.randbytes(rng.choice((1, 100, 4096, 5000, 70_000)))[:limit - offset]
            assert os.pwrite(fd, chunk, offset) == len(chunk)
            if offset > len(data):
                data.extend(bytes(offset - len(data)))
            data[offset:offset + len(chunk)] = chunk
        elif op < 0.6:
            size = rng.randrange(0, limit)
            os.ftruncate(fd, size)
            del data[size:]
            data.extend(bytes(size - len(data)))
        elif op < 0.75:
            offset = rng.randrange(0, len(data) + 10)
            length = rng.randrange(0, 100_000)
            assert os.pread(fd, length, offset) == bytes(data[offset:offset + length]), step
        elif op < 0.87:
            reopen(name)
        elif op < 0.9:
            os.fsync(fd)  # a durable commit each: ~50-100 ms
        elif op < 0.95:
            size = rng.randrange(0, limit)
            os.truncate(mount.path(name), size)  # by path: no file handle
            del data[size:]
            data.extend(bytes(size - len(data)))
        else:
            with open(mount.path(name), "rb") as other:  # a second handle sees the same bytes
                assert other.read() == bytes(data), step
        done.append(f"{step} {name} {op:.3f} size={len(data)}")
        fd = fds[name]
        assert os.fstat(fd).st_size == len(data), done[-20:]
        assert os.pread(fd, limit + 1, 0) == bytes(data), done[-20:]


# ---------------------------------------------------------------- crash safety

def test_a_killed_daemon_loses_nothing_committed_and_shows_no_partial_file(
        tmp_path: Path, pond_path: Path) -> None:
    """SIGKILL the daemon during ``cp -r``: after a remount, what was fsync'ed is there byte
    for byte, every copied file is absent or whole (content is staged at close, and a file
    created but not yet closed is left out of commits), and the pond passes its checks."""
    rng = random.Random(11)
    source = tmp_path / "src"
    source.mkdir()
    for i in range(600):
        (source / f"f{i:03}").write_bytes(rng.randbytes(rng.choice((10, 3000, 70_000))))
    # Short group-commit delays, so commits happen during the copy (at most 0.5 s apart).
    m = Mount(pond_path, tmp_path / "mnt", options="commit_interval=0.05").start()
    fd = os.open(m.path("synced"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"fsync'ed before the crash")
    os.fsync(fd)
    os.close(fd)
    copy = subprocess.Popen(["cp", "-r", str(source), str(m.path("copy"))],
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if m.path("copy").exists() and len(os.listdir(m.path("copy"))) > 200:
            break
        time.sleep(0.01)
    time.sleep(0.6)  # let group commits happen mid-copy
    m.kill()
    copy.wait(timeout=30)
    m.start()
    try:
        assert m.path("synced").read_bytes() == b"fsync'ed before the crash"
        names = os.listdir(m.path("copy"))
        for name in names:
            assert m.path("copy", name).read_bytes() == (source / name).read_bytes(), name
        assert names, "no commit happened during the copy: the test checked nothing"
    finally:
        assert m.stop() == 0
    check(pond_path)


def test_after_a_crash_each_file_is_as_last_closed_or_synced(tmp_path: Path,
                                                              pond_path: Path) -> None:
    """The crash rule (README, "What a crash leaves"): files open for writing when the daemon
    dies are absent (new) or as of their last close or fsync, whatever other files' fsyncs
    and group commits committed meanwhile."""
    m = Mount(pond_path, tmp_path / "mnt", options="commit_interval=0.05").start()
    m.path("old").write_bytes(b"closed before the crash\n" * 100)
    m.path("synced-twice").write_bytes(b"first close")
    new = os.open(m.path("new-open"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(new, b"never closed")
    over = os.open(m.path("old"), os.O_WRONLY | os.O_TRUNC)
    os.write(over, b"half an overwrite")
    synced = os.open(m.path("synced-twice"), os.O_WRONLY | os.O_APPEND)
    os.write(synced, b", then synced")
    os.fsync(synced)
    os.write(synced, b", then not")
    sync_new = os.open(m.path("new-synced"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(sync_new, b"new and synced")
    os.fsync(sync_new)  # commits everything closed or synced so far, nothing else
    time.sleep(0.5)  # group commits run meanwhile
    m.kill()
    for fd in (new, over, synced, sync_new):
        with pytest.raises(OSError):  # ENOTCONN: the daemon is gone
            os.close(fd)
    m.start()
    try:
        assert sorted(os.listdir(m.mountpoint)) == ["new-synced", "old", "synced-twice"]
        assert m.path("old").read_bytes() == b"closed before the crash\n" * 100
        assert m.path("synced-twice").read_bytes() == b"first close, then synced"
        assert m.path("new-synced").read_bytes() == b"new and synced"
    finally:
        assert m.stop() == 0
    check(pond_path)


def test_two_writers_through_the_mount(mount: Mount, pond_path: Path) -> None:
    """Two processes write their own files and append lines to one shared file at once."""
    script = (
        "import os, sys\n"
        "root, tag = sys.argv[1], sys.argv[2]\n"
        "shared = os.open(os.path.join(root, 'shared.log'), "
        "os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)\n"
        "for i in range(100):\n"
        "    with open(os.path.join(root, f'{tag}-{i:03}'), 'w') as f:\n"
        "        f.write(f'{tag} {i}\\n' * (i + 1))\n"
        "    os.write(shared, f'{tag} line {i}\\n'.encode())\n"
        "os.close(shared)\n")
    writers = [subprocess.Popen([sys.executable, "-c", script, str(mount.mountpoint), tag])
               for tag in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    lines = mount.path("shared.log").read_text().splitlines()
    assert sorted(lines) == sorted(f"{t} line {i}" for t in "ab" for i in range(100))
    mount.stop()
    tree = pond_tree(pond_path)
    assert len(tree) == 201
    assert tree["b-042"] == b"b 42\n" * 43


# ---------------------------------------------------------------- hard links and special files
# Each test does the same operations in a directory on the host disk (ext4: the reference)
# and in the mount, and compares what they leave: types, modes, link counts, device numbers,
# bytes, and which names share an inode.

def outcome(action) -> str:
    """"ok", or the name of the errno ``action()`` failed with."""
    try:
        action()
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return "ok"


def on_host_and_mount(tmp_path: Path, mount: Mount, operations) -> tuple[Path, Path]:
    """Run ``operations(root)`` in a new host directory and in the mount; assert that they
    return the same observations; the two roots."""
    host = tmp_path / "host"
    host.mkdir()
    assert operations(mount.mountpoint) == operations(host)
    return host, mount.mountpoint


def link_operations(root: Path) -> list:
    """Hard links as programs use them; what each step observes."""
    seen: list = []
    f, g, d = root / "f", root / "g", root / "d"
    f.write_bytes(b"hello\n")
    before, dir_before = os.stat(f), os.stat(root)
    time.sleep(0.01)
    os.link(f, g)  # the file's ctime moves (not its mtime), and its directory's times
    after = os.stat(f)
    seen += [after.st_nlink, after.st_ino == os.stat(g).st_ino,
             after.st_ctime_ns > before.st_ctime_ns, after.st_mtime_ns == before.st_mtime_ns,
             os.stat(root).st_mtime_ns > dir_before.st_mtime_ns]
    with open(g, "r+b") as through_g:  # written through one name, read through the other
        through_g.write(b"J")
    seen += [f.read_bytes(), shape(root)]
    d.mkdir()
    os.link(f, d / "h")  # across directories
    before = os.stat(g)
    time.sleep(0.01)
    os.unlink(f)  # the other names keep the content; the ctime moves
    seen += [g.read_bytes(), os.stat(g).st_nlink, os.stat(g).st_ctime_ns > before.st_ctime_ns,
             shape(root)]
    (root / "x").write_bytes(b"other")
    os.rename(root / "x", g)  # over one name of a linked file
    seen += [os.stat(d / "h").st_nlink, shape(root)]
    os.link(d / "h", d / "h2")
    os.rename(d / "h", d / "h2")  # two names of one file: nothing happens
    seen.append(shape(root))
    with open(root / "k", "wb") as k:  # a link to a file open for writing
        k.write(b"first ")
        k.flush()
        os.link(root / "k", d / "k2")
        k.write(b"second")
        k.flush()
        seen.append(os.fstat(k.fileno()).st_nlink)
    seen += [(d / "k2").read_bytes(), shape(root)]
    seen += [outcome(lambda: os.link(d, root / "d2")),
             outcome(lambda: os.link(g, d / "h2")),
             outcome(lambda: os.link(root / "missing", root / "z")),
             outcome(lambda: os.link(g, root / "g" / "z"))]
    with open(d / "h2", "rb") as reader:  # names go while the file is open
        os.unlink(d / "h")
        seen.append(os.fstat(reader.fileno()).st_nlink)
        os.unlink(d / "h2")
        seen += [os.fstat(reader.fileno()).st_nlink, reader.read()]
    os.link(g, d / "g2")
    os.rename(root / "k", d / "g2")  # across directories, over a linked file
    seen += [os.stat(g).st_nlink, shape(root)]
    return seen


def test_hard_links_behave_as_on_the_host(mount: Mount, pond_path: Path,
                                         tmp_path: Path) -> None:
    host, _ = on_host_and_mount(tmp_path, mount, link_operations)
    mount.stop()
    check(pond_path)
    mount.start()
    assert shape(mount.mountpoint) == shape(host)


def special_operations(root: Path) -> list:
    """A FIFO with a writer and a reader, a Unix socket bound and connected to, and device
    nodes (as root); what each step observes."""
    seen: list = []
    os.mkfifo(root / "fifo", 0o640)
    data = random.Random(3).randbytes(200_000)  # more than a pipe holds

    def write() -> None:
        with open(root / "fifo", "wb") as pipe:
            pipe.write(data)

    writer = threading.Thread(target=write)
    writer.start()
    with open(root / "fifo", "rb") as pipe:
        seen.append(pipe.read() == data)
    writer.join()
    with chdir(root), socket.socket(socket.AF_UNIX) as server:  # short path: 108 bytes at most
        server.bind("sock")
        server.listen(1)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect("sock")
            conn, _ = server.accept()
            with conn:
                client.sendall(b"ping")
                seen.append(conn.recv(4))
    os.link(root / "fifo", root / "fifo2")
    seen.append(outcome(lambda: os.mknod(root / "null", stat.S_IFCHR | 0o666,
                                         os.makedev(1, 3))))
    seen.append(outcome(lambda: os.mknod(root / "loop", stat.S_IFBLK | 0o660,
                                         os.makedev(7, 0))))
    seen.append(outcome(lambda: os.mknod(root / "fifo", stat.S_IFIFO | 0o600)))
    seen.append(shape(root))
    return seen


def test_fifos_sockets_and_device_nodes_behave_as_on_the_host(mount: Mount, pond_path: Path,
                                                             tmp_path: Path) -> None:
    host, root = on_host_and_mount(tmp_path, mount, special_operations)
    entries, _ = shape(root)
    if os.geteuid() == 0:
        assert entries["null"][2] == os.makedev(1, 3) and stat.S_ISCHR(entries["null"][0])
    mount.stop()
    check(pond_path)
    mount.start()
    assert shape(root) == shape(host)


@pytest.mark.parametrize("tool", ["cp -a", "rsync -aH", "tar x"])
def test_tools_copy_trees_with_links_and_special_files(mount: Mount, pond_path: Path,
                                                       tmp_path: Path, tool: str) -> None:
    if tool.startswith("rsync") and shutil.which("rsync") is None:
        pytest.skip("rsync is not installed (scripts/setup installs it)")
    source = make_linked_source(tmp_path / "src")
    archive = tmp_path / "src.tar"
    run("tar", "cf", str(archive), "-C", str(source), ".")

    def copy(into: Path) -> None:
        if tool == "cp -a":
            run("cp", "-a", f"{source}/.", str(into))
        elif tool == "rsync -aH":
            run("rsync", "-aH", f"{source}/", f"{into}/")
        else:
            run("tar", "xpf", str(archive), "-C", str(into))

    host = tmp_path / "host"
    for into in (host, mount.path("copy")):
        into.mkdir()
        copy(into)
    assert shape(mount.path("copy")) == shape(host)
    assert len(shape(host)[1]) < len(shape(host)[0])  # some names share an inode
    back = tmp_path / "back"
    run("cp", "-a", str(mount.path("copy")), str(back))
    assert shape(back) == shape(host)
    mount.stop()
    check(pond_path)
    mount.start()
    assert shape(mount.path("copy")) == shape(host)
