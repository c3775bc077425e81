"""tinyfs: the filesystem model over each persistence (memory, and a real Delta oplog).

Every test runs on both stores (the ``store``/``fs`` fixtures in conftest.py). Most tests
commit, then look again through a fresh :class:`FS` on the same store, so what they check is
what was persisted, not what one view remembers; many end by running the consistency checker.
"""

from __future__ import annotations

import errno
import io
import os
import stat as st
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from blake3 import blake3

from pondfs.tinyfs import (
    DIRECTORY,
    FILE,
    FS,
    INLINE_LIMIT,
    ROOT_ID,
    SYMLINK,
    Checker,
    DynamicDirectory,
    DynamicFile,
    FactoryRegistry,
    FsError,
    Persistence,
    TxnInfo,
    read_all,
)
from pondfs.tinyfs.fs import SNAPSHOT_EVERY

# ---------------------------------------------------------------- helpers


@contextmanager
def raises(err: int) -> Iterator[pytest.ExceptionInfo[FsError]]:
    """Expect an FsError carrying ``err``."""
    with pytest.raises(FsError) as info:
        yield info
    got = info.value.errno
    assert got == err, f"expected {errno.errorcode[err]}, got {errno.errorcode.get(got, got)}"


def make_file(fs: FS, dir_id: str, name: str, data: bytes = b"", **kwargs) -> str:
    node = fs.create(dir_id, name, **kwargs)
    if data:
        fs.write_content(node, [data])
    return node


def path_file(fs: FS, path: str, data: bytes = b"") -> str:
    """Create the file at ``path`` (its parent must exist) holding ``data``."""
    dir_id, name = fs.resolve_parent(path)
    return make_file(fs, dir_id, name, data)


def mkdirs(fs: FS, path: str) -> str:
    """Create every missing directory of an absolute ``path``; the last one's id."""
    node = ROOT_ID
    for part in path.strip("/").split("/"):
        node = fs.lookup(node, part) or fs.mkdir(node, part)
    return node


def cat(fs: FS, path: str) -> bytes:
    return read_all(fs, fs.resolve(path))


def assert_consistent(store: Persistence) -> None:
    """The checker finds no broken invariant in the newest state of ``store``."""
    report = Checker(FS(store)).run()
    assert report.ok, report.problems


def tick() -> None:
    """Let the clock move, so 'later' timestamps are strictly later."""
    time.sleep(0.002)


# ---------------------------------------------------------------- basics


def test_init_makes_root_and_one_transaction(store):
    fs = FS(store)
    root = fs.stat(ROOT_ID)
    assert root.kind == DIRECTORY
    assert st.S_ISDIR(root.mode) and root.mode & 0o7777 == 0o755
    assert root.nlink == 2
    assert fs.listdir(ROOT_ID) == {}
    assert store.last_txn() == 1
    with raises(errno.EEXIST):
        fs.init_root()


def test_create_write_read_and_stat_persist(store, fs):
    docs = fs.mkdir(ROOT_ID, "docs")
    sub = fs.mkdir(docs, "sub")
    node = make_file(fs, sub, "hello.txt", b"hello, pond\n", mode=0o640, uid=7, gid=8)
    assert fs.commit("write") == 2

    fresh = FS(store)
    assert fresh.resolve("/docs/sub/hello.txt") == node
    assert cat(fresh, "/docs/sub/hello.txt") == b"hello, pond\n"
    s = fresh.stat(node)
    assert (s.kind, s.format, s.size, s.nlink) == (FILE, "data", 12, 1)
    assert st.S_ISREG(s.mode) and s.mode & 0o7777 == 0o640
    assert (s.uid, s.gid) == (7, 8)
    assert (s.version, s.txn) == (1, 2)  # created and written in one transaction: one version
    assert fresh.listdir(ROOT_ID) == {"docs": docs}
    assert fresh.listdir(docs) == {"sub": sub}
    assert fresh.lookup(sub, "hello.txt") == node
    assert fresh.lookup(sub, "missing") is None
    assert fresh.kind(sub) == DIRECTORY and fresh.kind(node) == FILE
    assert_consistent(store)


def test_empty_file_reads_empty(store, fs):
    node = fs.create(ROOT_ID, "empty")
    fs.commit("touch")
    fresh = FS(store)
    assert read_all(fresh, node) == b""
    assert fresh.stat(node).size == 0


def test_uncommitted_changes_are_visible_to_their_view_only(store, fs):
    node = make_file(fs, ROOT_ID, "f", b"pending")
    assert fs.dirty
    assert read_all(fs, node) == b"pending"
    assert FS(store).listdir(ROOT_ID) == {}
    fs.commit("c")
    assert not fs.dirty
    assert FS(store).listdir(ROOT_ID) == {"f": node}


def test_many_files_and_dirs_persist(store, fs):
    expected = {}
    for d in range(5):
        dir_id = fs.mkdir(ROOT_ID, f"d{d}")
        for f in range(20):
            data = f"{d}/{f}".encode()
            make_file(fs, dir_id, f"f{f:02}", data)
            expected[f"/d{d}/f{f:02}"] = data
    fs.commit("many")
    fresh = FS(store)
    assert {p: cat(fresh, p) for p in expected} == expected
    assert sorted(fresh.listdir(ROOT_ID)) == [f"d{d}" for d in range(5)]
    assert fresh.stat(ROOT_ID).nlink == 7
    assert_consistent(store)


# ---------------------------------------------------------------- paths


@pytest.fixture
def tree(store, fs):
    """/a/b/c/file.txt, /top.txt, and symlinks; committed. Returns a fresh FS."""
    mkdirs(fs, "/a/b/c")
    path_file(fs, "/a/b/c/file.txt", b"deep")
    path_file(fs, "/top.txt", b"top")
    fs.symlink(fs.resolve("/a"), "rel", "b/c/file.txt")
    fs.symlink(fs.resolve("/a"), "abs", "/a/b/c/file.txt")
    fs.symlink(ROOT_ID, "chain", "/a/rel")
    fs.symlink(ROOT_ID, "dirlink", "a/b")
    fs.symlink(fs.resolve("/a/b"), "up", "../../top.txt")
    fs.symlink(ROOT_ID, "dangling", "nowhere")
    fs.commit("tree")
    return FS(store)


def test_resolve_absolute_relative_dot_and_dotdot(tree):
    file_id = tree.resolve("/a/b/c/file.txt")
    assert tree.resolve("b/c/file.txt", cwd="/a") == file_id
    assert tree.resolve("./c/./file.txt", cwd="/a/b") == file_id
    assert tree.resolve("../b/c/file.txt", cwd="/a/b") == file_id
    assert tree.resolve("/a/b/c/../c/file.txt") == file_id
    assert tree.resolve("//a///b/c/file.txt") == file_id
    assert tree.resolve("/") == ROOT_ID
    assert tree.resolve(".") == ROOT_ID
    assert tree.resolve(".", cwd="/a") == tree.resolve("/a")
    assert tree.resolve("../..", cwd="/a/b") == ROOT_ID


def test_dotdot_at_root_stays_at_root(tree):
    assert tree.resolve("/..") == ROOT_ID
    assert tree.resolve("/../../..") == ROOT_ID
    assert tree.resolve("../../a", cwd="/") == tree.resolve("/a")
    assert tree.canonical("/../a/..") == "/"


def test_symlinks_relative_absolute_and_chains(tree):
    file_id = tree.resolve("/a/b/c/file.txt")
    assert tree.resolve("/a/rel") == file_id
    assert tree.resolve("/a/abs") == file_id
    assert tree.resolve("/chain") == file_id  # chain -> /a/rel -> b/c/file.txt
    assert tree.resolve("/a/b/up") == tree.resolve("/top.txt")
    assert cat(tree, "/chain") == b"deep"
    link = tree.resolve("/chain", follow=False)
    assert link != file_id
    assert tree.kind(link) == SYMLINK
    assert tree.readlink(link) == "/a/rel"
    assert tree.stat(link).size == len("/a/rel")
    assert st.S_ISLNK(tree.stat(link).mode)
    with raises(errno.EINVAL):
        tree.readlink(file_id)


def test_symlink_to_a_directory_in_the_middle_of_a_path(tree):
    file_id = tree.resolve("/a/b/c/file.txt")
    assert tree.resolve("/dirlink/c/file.txt") == file_id
    # '..' after a symlink is taken in the directory the link led to, as the kernel does
    assert tree.resolve("/dirlink/../b/c/file.txt") == file_id
    assert tree.canonical("/dirlink/c") == "/a/b/c"
    # follow=False applies to the last component only
    assert tree.resolve("/dirlink/c/file.txt", follow=False) == file_id
    assert tree.kind(tree.resolve("/dirlink", follow=False)) == SYMLINK


def test_dangling_symlink(tree):
    with raises(errno.ENOENT):
        tree.resolve("/dangling")
    link = tree.resolve("/dangling", follow=False)
    assert tree.readlink(link) == "nowhere"
    with raises(errno.ENOENT):
        tree.resolve("/dangling/x", follow=False)


def test_symlink_loops_are_eloop(store, fs):
    fs.symlink(ROOT_ID, "self", "self")
    fs.symlink(ROOT_ID, "ping", "pong")
    fs.symlink(ROOT_ID, "pong", "/ping")
    d = fs.mkdir(ROOT_ID, "d")
    fs.symlink(d, "loop", "../d/loop")
    fs.commit("loops")
    fresh = FS(store)
    for path in ("/self", "/ping", "/pong", "/d/loop", "/ping/x"):
        with raises(errno.ELOOP):
            fresh.resolve(path)
    assert fresh.kind(fresh.resolve("/self", follow=False)) == SYMLINK


def test_forty_symlinks_are_fine_forty_one_are_not(store, fs):
    make_file(fs, ROOT_ID, "target", b"x")
    fs.symlink(ROOT_ID, "l0", "target")
    for i in range(1, 41):
        fs.symlink(ROOT_ID, f"l{i}", f"l{i - 1}")
    fs.commit("links")
    fresh = FS(store)
    assert cat(fresh, "/l39") == b"x"  # 40 links followed
    with raises(errno.ELOOP):
        fresh.resolve("/l40")


def test_canonical(tree):
    assert tree.canonical("/chain") == "/a/b/c/file.txt"
    assert tree.canonical("c/../c/file.txt", cwd="/a/b") == "/a/b/c/file.txt"
    assert tree.canonical("/a/b/up") == "/top.txt"
    assert tree.canonical("/") == "/"


def test_path_through_a_file_is_enotdir(tree):
    with raises(errno.ENOTDIR):
        tree.resolve("/top.txt/x")
    with raises(errno.ENOTDIR):
        tree.resolve("/a/abs/x")
    with raises(errno.ENOTDIR):
        tree.resolve("/top.txt/..")
    with raises(errno.ENOTDIR):
        tree.resolve("/top.txt/.")
    with raises(errno.ENOENT):
        tree.resolve("/a/missing/x")


def test_resolve_parent(tree):
    assert tree.resolve_parent("/a/b/new") == (tree.resolve("/a/b"), "new")
    assert tree.resolve_parent("new", cwd="/a") == (tree.resolve("/a"), "new")
    assert tree.resolve_parent("/dirlink/new") == (tree.resolve("/a/b"), "new")
    assert tree.resolve_parent("/x") == (ROOT_ID, "x")
    with raises(errno.ENOTDIR):
        tree.resolve_parent("/top.txt/new")
    with raises(errno.ENOENT):
        tree.resolve_parent("/missing/new")
    with raises(errno.EINVAL):
        tree.resolve_parent("/")
    with raises(errno.EINVAL):
        tree.resolve_parent("/a/..")


# ---------------------------------------------------------------- names and errors


BAD_NAMES = ["", ".", "..", "a/b", "nul\0byte"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_names_are_einval(fs, name):
    make_file(fs, ROOT_ID, "src")
    with raises(errno.EINVAL):
        fs.create(ROOT_ID, name)
    with raises(errno.EINVAL):
        fs.mkdir(ROOT_ID, name)
    with raises(errno.EINVAL):
        fs.symlink(ROOT_ID, name, "x")
    with raises(errno.EINVAL):
        fs.rename(ROOT_ID, "src", ROOT_ID, name)
    assert fs.listdir(ROOT_ID) == {"src": fs.resolve("/src")}


def test_name_length_limit(store, fs):
    fs.create(ROOT_ID, "n" * 255)
    fs.create(ROOT_ID, "é" * 127)  # 254 bytes
    with raises(errno.ENAMETOOLONG):
        fs.create(ROOT_ID, "n" * 256)
    with raises(errno.ENAMETOOLONG):
        fs.mkdir(ROOT_ID, "é" * 128)  # 128 characters, 256 bytes
    fs.commit("names")
    assert sorted(FS(store).listdir(ROOT_ID)) == sorted(["n" * 255, "é" * 127])


def test_eexist(fs):
    make_file(fs, ROOT_ID, "f")
    fs.mkdir(ROOT_ID, "d")
    fs.symlink(ROOT_ID, "l", "f")
    for name in ("f", "d", "l"):
        with raises(errno.EEXIST):
            fs.create(ROOT_ID, name)
        with raises(errno.EEXIST):
            fs.mkdir(ROOT_ID, name)
        with raises(errno.EEXIST):
            fs.symlink(ROOT_ID, name, "x")


def test_enoent(fs):
    with raises(errno.ENOENT):
        fs.resolve("/missing")
    with raises(errno.ENOENT):
        fs.unlink(ROOT_ID, "missing")
    with raises(errno.ENOENT):
        fs.rmdir(ROOT_ID, "missing")
    with raises(errno.ENOENT):
        fs.rename(ROOT_ID, "missing", ROOT_ID, "x")
    with raises(errno.ENOENT):
        fs.stat("01234567-0000-7000-8000-000000000000")


def test_kind_mismatches(fs):
    f = make_file(fs, ROOT_ID, "f", b"x")
    d = fs.mkdir(ROOT_ID, "d")
    with raises(errno.EISDIR):
        fs.unlink(ROOT_ID, "d")
    with raises(errno.EISDIR):
        fs.write_content(d, [b"x"])
    with raises(errno.EISDIR):
        fs.open_read(d)
    with raises(errno.EISDIR):
        fs.truncate(d, 0)
    with raises(errno.ENOTDIR):
        fs.rmdir(ROOT_ID, "f")
    with raises(errno.ENOTDIR):
        fs.listdir(f)
    with raises(errno.ENOTDIR):
        fs.lookup(f, "x")
    with raises(errno.ENOTDIR):
        fs.create(f, "x")
    with raises(errno.ENOTDIR):
        fs.mkdir(f, "x")
    with raises(errno.EINVAL):
        fs.create(ROOT_ID, "bad", fmt="csv")


def test_rmdir(store, fs):
    d = fs.mkdir(ROOT_ID, "d")
    make_file(fs, d, "f")
    fs.commit("d")
    fs = FS(store)
    with raises(errno.ENOTEMPTY):
        fs.rmdir(ROOT_ID, "d")
    fs.unlink(d, "f")
    fs.rmdir(ROOT_ID, "d")
    fs.commit("rm")
    fresh = FS(store)
    assert fresh.listdir(ROOT_ID) == {}
    with raises(errno.ENOENT):
        fresh.stat(d)
    assert_consistent(store)


def test_unlink_then_recreate_same_name(store, fs):
    old = make_file(fs, ROOT_ID, "f", b"old")
    fs.commit("one")
    fs.unlink(ROOT_ID, "f")
    new = make_file(fs, ROOT_ID, "f", b"new")
    fs.commit("two")
    fresh = FS(store)
    assert new != old
    assert fresh.resolve("/f") == new
    assert cat(fresh, "/f") == b"new"
    with raises(errno.ENOENT):
        fresh.stat(old)
    assert fresh.versions(old)[-1].deleted
    assert_consistent(store)


# ---------------------------------------------------------------- rename


def test_rename_within_a_directory(store, fs):
    node = make_file(fs, ROOT_ID, "old", b"data")
    fs.commit("c")
    fs.rename(ROOT_ID, "old", ROOT_ID, "new")
    fs.commit("mv")
    fresh = FS(store)
    assert fresh.listdir(ROOT_ID) == {"new": node}
    assert cat(fresh, "/new") == b"data"
    assert_consistent(store)


def test_rename_file_across_directories_keeps_content_and_history(store, fs):
    a = fs.mkdir(ROOT_ID, "a")
    b = fs.mkdir(ROOT_ID, "b")
    node = make_file(fs, a, "f", b"v1")
    fs.commit("c")
    fs.write_content(node, [b"v2"])
    fs.commit("w")
    fs.rename(a, "f", b, "g")
    fs.commit("mv")
    fresh = FS(store)
    assert fresh.listdir(a) == {}
    assert fresh.listdir(b) == {"g": node}
    assert cat(fresh, "/b/g") == b"v2"
    history = fresh.versions(node)
    assert [v.version for v in history] == [1, 2, 3]
    assert [v.part_id for v in history] == [a, a, b]
    fresh.write_content(node, [b"v3"])
    fresh.commit("w2")
    assert cat(FS(store), "/b/g") == b"v3"
    assert cat(FS(store, at=3), "/a/f") == b"v2"
    assert_consistent(store)


def test_rename_directory_across_directories(store, fs):
    mkdirs(fs, "/a/sub/deeper")
    path_file(fs, "/a/sub/deeper/f", b"x")
    b = fs.mkdir(ROOT_ID, "b")
    fs.commit("c")
    sub = fs.resolve("/a/sub")
    fs.rename(fs.resolve("/a"), "sub", b, "moved")
    fs.commit("mv")
    fresh = FS(store)
    assert fresh.resolve("/b/moved") == sub
    assert cat(fresh, "/b/moved/deeper/f") == b"x"
    assert fresh.listdir(fresh.resolve("/a")) == {}
    assert fresh.stat(fresh.resolve("/a")).nlink == 2
    assert fresh.stat(b).nlink == 3
    assert_consistent(store)


def test_rename_replaces_a_file(store, fs):
    src = make_file(fs, ROOT_ID, "src", b"new")
    dst = make_file(fs, ROOT_ID, "dst", b"old")
    fs.commit("c")
    fs.rename(ROOT_ID, "src", ROOT_ID, "dst")
    fs.commit("mv")
    fresh = FS(store)
    assert fresh.listdir(ROOT_ID) == {"dst": src}
    assert cat(fresh, "/dst") == b"new"
    with raises(errno.ENOENT):
        fresh.stat(dst)
    assert_consistent(store)


def test_rename_directory_over_an_empty_directory(store, fs):
    src = fs.mkdir(ROOT_ID, "src")
    make_file(fs, src, "f")
    fs.mkdir(ROOT_ID, "dst")
    fs.commit("c")
    fs.rename(ROOT_ID, "src", ROOT_ID, "dst")
    fs.commit("mv")
    fresh = FS(store)
    assert fresh.listdir(ROOT_ID) == {"dst": src}
    assert sorted(fresh.listdir(src)) == ["f"]
    assert fresh.stat(ROOT_ID).nlink == 3
    assert_consistent(store)


def test_rename_refusals(fs):
    d = fs.mkdir(ROOT_ID, "d")
    full = fs.mkdir(ROOT_ID, "full")
    make_file(fs, full, "x")
    make_file(fs, ROOT_ID, "f")
    make_file(fs, ROOT_ID, "g")
    sub = fs.mkdir(d, "sub")
    with raises(errno.ENOTEMPTY):
        fs.rename(ROOT_ID, "d", ROOT_ID, "full")
    with raises(errno.EISDIR):
        fs.rename(ROOT_ID, "f", ROOT_ID, "d")
    with raises(errno.ENOTDIR):
        fs.rename(ROOT_ID, "d", ROOT_ID, "f")
    with raises(errno.EEXIST):
        fs.rename(ROOT_ID, "f", ROOT_ID, "g", noreplace=True)
    with raises(errno.EINVAL):
        fs.rename(ROOT_ID, "d", sub, "x")
    with raises(errno.EINVAL):
        fs.rename(ROOT_ID, "d", d, "x")
    with raises(errno.ENOTDIR):
        fs.rename(ROOT_ID, "f", fs.resolve("/g"), "x")
    assert sorted(fs.listdir(ROOT_ID)) == ["d", "f", "full", "g"]
    assert fs.listdir(d) == {"sub": sub}


def test_rename_to_itself_is_a_no_op(store, fs):
    node = make_file(fs, ROOT_ID, "f", b"x")
    d = fs.mkdir(ROOT_ID, "d")
    fs.commit("c")
    fs.rename(ROOT_ID, "f", ROOT_ID, "f")
    fs.rename(ROOT_ID, "d", ROOT_ID, "d")
    fs.rename(ROOT_ID, "f", ROOT_ID, "f", noreplace=True)
    assert fs.commit("nothing") is None
    assert FS(store).listdir(ROOT_ID) == {"f": node, "d": d}


def test_rename_back_and_forth_in_one_transaction(store, fs):
    a = fs.mkdir(ROOT_ID, "a")
    node = make_file(fs, ROOT_ID, "f", b"x")
    fs.commit("c")
    fs.rename(ROOT_ID, "f", a, "f")
    fs.rename(a, "f", ROOT_ID, "f2")
    fs.commit("mv")
    fresh = FS(store)
    assert fresh.listdir(ROOT_ID) == {"a": a, "f2": node}
    assert fresh.listdir(a) == {}
    assert cat(fresh, "/f2") == b"x"
    assert_consistent(store)


# ---------------------------------------------------------------- hard links


def test_hard_links_name_one_node_whose_rows_stay_in_one_partition(store, fs):
    a = fs.mkdir(ROOT_ID, "a")
    b = fs.mkdir(ROOT_ID, "b")
    node = make_file(fs, a, "f", b"one")
    fs.commit("c")
    before = FS(store).stat(node)
    tick()
    fs.link(node, b, "g")
    fs.link(node, a, "h")
    fs.commit("ln")
    fresh = FS(store)
    assert fresh.resolve("/a/f") == fresh.resolve("/b/g") == fresh.resolve("/a/h") == node
    s = fresh.stat(node)
    assert s.nlink == 3 and s.ctime_ns > before.ctime_ns and s.mtime_ns == before.mtime_ns
    assert fresh.stat(a).nlink == 2  # a directory's count is of subdirectories only
    fresh.write_content(fresh.resolve("/b/g"), [b"written through g"])
    fresh.commit("w")
    newest = FS(store)
    assert cat(newest, "/a/f") == cat(newest, "/a/h") == b"written through g"
    assert {v.part_id for v in newest.versions(node)} == {a}
    assert newest.entries(b)["g"].part_id == a and newest.entries(a)["h"].part_id == ""
    assert_consistent(store)


def test_unlink_drops_one_name_and_the_last_one_removes_the_node(store, fs):
    a = fs.mkdir(ROOT_ID, "a")
    node = make_file(fs, a, "f", b"kept")
    fs.link(node, ROOT_ID, "g")
    fs.link(node, ROOT_ID, "h")
    fs.commit("c")
    assert fs.unlink(a, "f") == 2
    fs.commit("rm f")
    fresh = FS(store)
    assert fresh.stat(node).nlink == 2 and cat(fresh, "/g") == b"kept"
    assert fresh.names(node) == 2
    assert_consistent(store)
    assert fresh.unlink(ROOT_ID, "g") == 1
    assert fresh.unlink(ROOT_ID, "h") == 0
    assert fresh.names(node) == 0
    fresh.commit("rm g h")
    newest = FS(store)
    with raises(errno.ENOENT):
        newest.stat(node)
    assert newest.versions(node)[-1].deleted
    assert newest.listdir(ROOT_ID) == {"a": a}
    assert_consistent(store)


def test_rename_over_a_link_and_between_links(store, fs):
    node = make_file(fs, ROOT_ID, "f", b"linked")
    fs.link(node, ROOT_ID, "g")
    other = make_file(fs, ROOT_ID, "other", b"other")
    fs.commit("c")
    fs.rename(ROOT_ID, "f", ROOT_ID, "g")  # two names of one node: nothing happens (POSIX)
    assert fs.commit("nothing") is None
    fs.rename(ROOT_ID, "other", ROOT_ID, "g")  # replaces one name: the node keeps the other
    fs.commit("mv")
    fresh = FS(store)
    assert fresh.listdir(ROOT_ID) == {"f": node, "g": other}
    assert fresh.stat(node).nlink == 1 and cat(fresh, "/f") == b"linked"
    fresh.link(other, ROOT_ID, "o2")
    fresh.rename(ROOT_ID, "f", ROOT_ID, "o2")  # replaces a name of a linked node
    fresh.commit("mv2")
    newest = FS(store)
    assert newest.listdir(ROOT_ID) == {"g": other, "o2": node}
    assert newest.stat(other).nlink == 1 and newest.stat(node).nlink == 1
    assert_consistent(store)


def test_moving_names_of_a_linked_node_leaves_its_rows_until_one_name_is_left(store, fs):
    a, b, c, d = (fs.mkdir(ROOT_ID, n) for n in "abcd")
    node = make_file(fs, a, "f", b"x")
    fs.link(node, b, "g")
    fs.commit("c")
    fs.rename(b, "g", c, "g")
    fs.commit("mv g")
    fresh = FS(store)
    assert fresh.get(node).part_id == a and fresh.entries(c)["g"].part_id == a
    assert_consistent(store)
    fresh.unlink(a, "f")
    fresh.rmdir(ROOT_ID, "a")  # the partition outlives its directory while it holds rows
    fresh.commit("rm f, a")
    assert cat(FS(store), "/c/g") == b"x"
    assert_consistent(store)
    newest = FS(store)
    newest.rename(c, "g", d, "h")  # the only name now: the rows follow it
    newest.commit("mv h")
    last = FS(store)
    assert last.get(node).part_id == d and last.entries(d)["h"].part_id == ""
    assert cat(last, "/d/h") == b"x" and last.stat(node).nlink == 1
    assert [v.part_id for v in last.versions(node)][-1] == d
    assert_consistent(store)


def test_links_of_symlinks_series_and_in_one_transaction_with_their_file(store, fs):
    sym = fs.symlink(ROOT_ID, "l", "target")
    series = fs.create(ROOT_ID, "s", fmt="series")
    fs.append_series(series, pa.table({"timestamp": [1, 2], "v": [1.0, 2.0]}))
    node = make_file(fs, ROOT_ID, "new", b"fresh")
    fs.link(node, ROOT_ID, "new2")
    fs.link(sym, ROOT_ID, "l2")
    fs.link(series, ROOT_ID, "s2")
    fs.commit("c")
    fresh = FS(store)
    assert fresh.readlink(fresh.resolve("/l2", follow=False)) == "target"
    assert fresh.read_series(fresh.resolve("/s2")).num_rows == 2
    assert len(fresh.series_versions(series)) == 1  # a link adds no rows
    assert cat(fresh, "/new2") == b"fresh"
    assert all(fresh.stat(n).nlink == 2 for n in (sym, series, node))
    assert_consistent(store)


def test_link_refusals(store, fs, monkeypatch):
    import pondfs.tinyfs.fs as tinyfs_fs

    d = fs.mkdir(ROOT_ID, "d")
    node = make_file(fs, ROOT_ID, "f", b"x")
    fs.commit("c")
    with raises(errno.EPERM):
        fs.link(d, ROOT_ID, "d2")
    with raises(errno.EEXIST):
        fs.link(node, ROOT_ID, "d")
    with raises(errno.ENOTDIR):
        fs.link(node, node, "x")
    with raises(errno.EINVAL):
        fs.link(node, ROOT_ID, "a/b")
    with raises(errno.ENOENT):
        fs.link("no-such-node", ROOT_ID, "x")
    with raises(errno.EROFS):
        FS(store, at=2).link(node, ROOT_ID, "x")
    monkeypatch.setattr(tinyfs_fs, "LINK_MAX", 3)
    fs.link(node, ROOT_ID, "two")
    fs.link(node, d, "three")
    with raises(errno.EMLINK):
        fs.link(node, ROOT_ID, "four")
    fs.commit("ln")
    assert FS(store).stat(node).nlink == 3
    assert_consistent(store)


def test_time_travel_shows_links_as_they_were(store, fs):
    node = make_file(fs, ROOT_ID, "f", b"x")
    fs.commit("c")
    fs.link(node, ROOT_ID, "g")
    linked = fs.commit("ln")
    fs.unlink(ROOT_ID, "f")
    fs.commit("rm")
    then = FS(store, at=linked)
    assert then.listdir(ROOT_ID) == {"f": node, "g": node} and then.stat(node).nlink == 2
    now = FS(store)
    assert now.listdir(ROOT_ID) == {"g": node} and now.stat(node).nlink == 1
    assert [v.nlink for v in now.versions(node)] == [1, 2, 1]


def test_checker_finds_link_counts_that_disagree_with_the_names(store, fs):
    node = make_file(fs, ROOT_ID, "f", b"x")
    fs.link(node, ROOT_ID, "g")
    fs.commit("c")
    v = FS(store).get(node)
    txn = store.last_txn() + 1
    info = TxnInfo(txn, time.time_ns(), "miscount")
    store.commit([v.evolve(version=v.version + 1, txn=txn, nlink=3,
                            content=store.read_inline(v))], info)
    report = Checker(FS(store)).run()
    assert report.problems == [f"node {node} has 2 name(s) but nlink 3: /f, /g"]


# ---------------------------------------------------------------- special files


@pytest.mark.parametrize(("kind", "type_bits", "rdev"), [
    ("fifo", st.S_IFIFO, 0), ("socket", st.S_IFSOCK, 0),
    ("chardev", st.S_IFCHR, os.makedev(1, 3)), ("blockdev", st.S_IFBLK, os.makedev(7, 0))])
def test_special_files_are_nodes_with_a_mode_and_no_content(store, fs, kind, type_bits, rdev):
    node = fs.mknod(ROOT_ID, "special", type_bits | 0o640, rdev=rdev, uid=7, gid=8)
    fs.link(node, ROOT_ID, "again")
    fs.commit("mknod")
    fresh = FS(store)
    s = fresh.stat(fresh.resolve("/again"))
    assert (s.kind, st.S_IFMT(s.mode), st.S_IMODE(s.mode)) == (kind, type_bits, 0o640)
    assert (s.rdev, s.size, s.nlink, s.uid, s.gid) == (rdev, 0, 2, 7, 8)
    assert fresh.kind(node) == kind
    with raises(errno.EINVAL):
        fresh.open_read(node)
    with raises(errno.EINVAL):
        fresh.write_content(node, [b"x"])
    fresh.setattr(node, mode=0o600)
    fresh.commit("chmod")
    assert st.S_IMODE(FS(store).stat(node).mode) == 0o600
    assert_consistent(store)


def test_mknod_keeps_rdev_for_devices_only_and_refuses_other_types(store, fs):
    fifo = fs.mknod(ROOT_ID, "p", st.S_IFIFO | 0o644, rdev=os.makedev(1, 3))
    fs.commit("c")
    assert FS(store).stat(fifo).rdev == 0  # as ext4 stores it
    for type_bits in (st.S_IFREG, st.S_IFDIR, st.S_IFLNK, 0):
        with raises(errno.EINVAL):
            fs.mknod(ROOT_ID, "x", type_bits | 0o644)
    with raises(errno.EEXIST):
        fs.mknod(ROOT_ID, "p", st.S_IFSOCK | 0o644)
    with raises(errno.EROFS):
        FS(store, at=1).mknod(ROOT_ID, "x", st.S_IFIFO | 0o644)


# ---------------------------------------------------------------- attributes


def test_setattr(store, fs):
    node = make_file(fs, ROOT_ID, "f", b"x")
    fs.commit("c")
    before = FS(store).stat(node)
    tick()
    fs.setattr(node, mode=0o4751, uid=1000, gid=100, atime_ns=111, mtime_ns=222)
    fs.commit("chattr")
    after = FS(store).stat(node)
    assert after.mode == st.S_IFREG | 0o4751
    assert (after.uid, after.gid, after.atime_ns, after.mtime_ns) == (1000, 100, 111, 222)
    assert after.ctime_ns > before.ctime_ns
    assert after.size == 1 and cat(FS(store), "/f") == b"x"
    fs.setattr(node, mode=0o100600)  # file-type bits are not the caller's to change
    assert fs.stat(node).mode == st.S_IFREG | 0o600


def test_ctime_changes_on_chmod_rename_and_write(fs):
    node = make_file(fs, ROOT_ID, "f", b"x")
    fs.commit("c")
    last = fs.stat(node).ctime_ns
    for change in (
        lambda: fs.setattr(node, mode=0o600),
        lambda: fs.setattr(node, uid=5),
        lambda: fs.rename(ROOT_ID, "f", ROOT_ID, "g"),
        lambda: fs.write_content(node, [b"y"]),
        lambda: fs.truncate(node, 10),
        lambda: fs.setxattr(node, "user.a", b"1"),
    ):
        tick()
        change()
        fs.commit("change")
        now = fs.stat(node).ctime_ns
        assert now > last
        last = now


def test_write_changes_mtime(fs):
    node = make_file(fs, ROOT_ID, "f", b"x")
    fs.commit("c")
    before = fs.stat(node).mtime_ns
    tick()
    fs.write_content(node, [b"y"])
    assert fs.stat(node).mtime_ns > before


def test_parent_times_change_on_entry_changes(store, fs):
    a = fs.mkdir(ROOT_ID, "a")
    b = fs.mkdir(ROOT_ID, "b")
    fs.commit("c")

    def times(node: str) -> tuple[int, int]:
        s = FS(store).stat(node)
        return s.mtime_ns, s.ctime_ns

    steps = [
        (lambda: fs.create(a, "f"), [a]),
        (lambda: fs.mkdir(a, "d"), [a]),
        (lambda: fs.symlink(a, "l", "f"), [a]),
        (lambda: fs.rename(a, "f", b, "f"), [a, b]),
        (lambda: fs.rename(b, "f", b, "g"), [b]),
        (lambda: fs.unlink(b, "g"), [b]),
        (lambda: fs.rmdir(a, "d"), [a]),
    ]
    for change, parents in steps:
        before = {p: times(p) for p in (a, b)}
        tick()
        change()
        fs.commit("step")
        for p in (a, b):
            mtime, ctime = times(p)
            if p in parents:
                assert mtime > before[p][0] and ctime > before[p][1]
            else:
                assert (mtime, ctime) == before[p]


def test_directory_nlink_is_two_plus_subdirectories(store, fs):
    d = fs.mkdir(ROOT_ID, "d")
    assert fs.stat(d).nlink == 2
    for name in ("x", "y", "z"):
        fs.mkdir(d, name)
    make_file(fs, d, "file")
    fs.symlink(d, "link", "x")
    fs.commit("c")
    assert FS(store).stat(d).nlink == 5
    assert FS(store).stat(ROOT_ID).nlink == 3
    fs.rmdir(d, "y")
    fs.rename(d, "z", ROOT_ID, "z")
    fs.commit("rm")
    fresh = FS(store)
    assert fresh.stat(d).nlink == 3
    assert fresh.stat(ROOT_ID).nlink == 4


# ---------------------------------------------------------------- xattrs


def test_xattrs(store, fs):
    node = make_file(fs, ROOT_ID, "f")
    d = fs.mkdir(ROOT_ID, "d")
    binary = bytes(range(256))
    fs.setxattr(node, "user.binary", binary)
    fs.setxattr(node, "user.text", b"hello")
    fs.setxattr(d, "user.on_dir", b"")
    fs.commit("x")
    fresh = FS(store)
    assert fresh.listxattr(node) == ["user.binary", "user.text"]
    assert fresh.getxattr(node, "user.binary") == binary
    assert fresh.getxattr(d, "user.on_dir") == b""
    with raises(errno.ENODATA):
        fresh.getxattr(node, "user.missing")
    with raises(errno.ENODATA):
        fresh.removexattr(node, "user.missing")
    fresh.setxattr(node, "user.text", b"replaced")
    fresh.removexattr(node, "user.binary")
    fresh.commit("y")
    newest = FS(store)
    assert newest.listxattr(node) == ["user.text"]
    assert newest.getxattr(node, "user.text") == b"replaced"
    old = FS(store, at=2)
    assert old.getxattr(node, "user.binary") == binary
    assert old.getxattr(node, "user.text") == b"hello"


# ---------------------------------------------------------------- content


def test_truncate(store, fs):
    node = make_file(fs, ROOT_ID, "f", b"0123456789")
    fs.commit("c")
    fs.truncate(node, 4)
    fs.commit("down")
    assert cat(FS(store), "/f") == b"0123"
    fs.truncate(node, 8)
    fs.commit("up")
    assert cat(FS(store), "/f") == b"0123" + bytes(4)
    assert FS(store).stat(node).size == 8
    fs.truncate(node, 0)
    fs.commit("zero")
    assert cat(FS(store), "/f") == b""
    with raises(errno.EINVAL):
        fs.truncate(node, -1)


def test_truncate_up_across_the_inline_limit(store, fs):
    node = make_file(fs, ROOT_ID, "f", b"abc")
    fs.truncate(node, INLINE_LIMIT + 5)
    fs.commit("up")
    fresh = FS(store)
    data = cat(fresh, "/f")
    assert data == b"abc" + bytes(INLINE_LIMIT + 2)
    assert fresh.get(node).inline is False


def test_write_content_streams_many_chunks(store, fs):
    node = fs.create(ROOT_ID, "f")
    chunks = [bytes([i % 251]) * 997 for i in range(200)]
    consumed = []

    def produce():
        for c in chunks:
            consumed.append(len(c))
            yield c

    fs.write_content(node, produce())
    fs.commit("w")
    assert len(consumed) == 200
    expected = b"".join(chunks)
    fresh = FS(store)
    assert cat(fresh, "/f") == expected
    assert fresh.stat(node).size == len(expected)
    assert fresh.get(node).blake3 == blake3(expected).hexdigest()


@pytest.mark.parametrize(("size", "inline"), [
    (INLINE_LIMIT - 1, True), (INLINE_LIMIT, False), (1_000_000, False)])
def test_large_content_is_an_object(store, fs, size, inline):
    data = os.urandom(size)
    node = make_file(fs, ROOT_ID, "big", data)
    fs.commit("big")
    fresh = FS(store)
    row = fresh.get(node)
    assert row.inline is inline
    assert row.size == size
    assert row.blake3 == blake3(data).hexdigest()
    assert cat(fresh, "/big") == data
    with fresh.open_read(node) as f:
        f.seek(size - 10)
        assert f.read() == data[-10:]
    assert_consistent(store)


@pytest.mark.parametrize("size", [INLINE_LIMIT - 1, 3 * 1024 * 1024 + 5])
def test_a_host_file_is_written_and_copied_out_by_descriptor(store, fs, tmp_path, size):
    """write_file takes a file descriptor from its offset; copy_to writes to one from its
    offset: the same bytes as write_content and open_read, inline or as an object."""
    data = os.urandom(size)
    source = tmp_path / "source"
    source.write_bytes(b"skipped" + data)
    node = fs.create(ROOT_ID, "f")
    copied: list[int] = []
    with open(source, "rb") as f:
        f.seek(len(b"skipped"))
        fs.write_file(node, f.fileno(), copied.append)
    fs.commit("w")
    assert sum(copied) == size
    fresh = FS(store)
    assert fresh.get(node).blake3 == blake3(data).hexdigest()
    assert fresh.get(node).inline is (size < INLINE_LIMIT)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        f.write(b"head")
        f.flush()
        fresh.copy_to(node, f.fileno())
    assert out.read_bytes() == b"head" + data


def test_metadata_change_keeps_large_content(store, fs):
    data = os.urandom(INLINE_LIMIT * 2)
    node = make_file(fs, ROOT_ID, "big", data)
    fs.commit("big")
    fs.setattr(node, mode=0o600)
    fs.rename(ROOT_ID, "big", ROOT_ID, "renamed")
    fs.commit("meta")
    fresh = FS(store)
    assert cat(fresh, "/renamed") == data
    assert fresh.get(node).inline is False
    assert_consistent(store)


def test_table_format(store, fs):
    table = pa.table({"site": ["a", "b"], "value": [1.5, 2.5]})
    node = fs.create(ROOT_ID, "t.parquet", fmt="table")
    fs.write_table(node, table)
    fs.commit("t")
    fresh = FS(store)
    assert fresh.stat(node).format == "table"
    with fresh.open_read(node) as f:
        assert pq.read_table(f).equals(table)


# ---------------------------------------------------------------- versions and time travel


def test_versions_and_time_travel(store, fs):
    node = make_file(fs, ROOT_ID, "f", b"one")
    t2 = fs.commit("one")
    fs.write_content(node, [b"two"])
    make_file(fs, ROOT_ID, "later", b"l")
    t3 = fs.commit("two")
    fs.write_content(node, [b"three"])
    t4 = fs.commit("three")
    fs.unlink(ROOT_ID, "f")
    t5 = fs.commit("gone")
    assert (t2, t3, t4, t5) == (2, 3, 4, 5)

    history = FS(store).versions(node)
    assert [(v.version, v.txn, v.deleted) for v in history] == [
        (1, 2, False), (2, 3, False), (3, 4, False), (4, 5, True)]
    assert [v.size for v in history[:3]] == [3, 3, 5]

    assert cat(FS(store, at=2), "/f") == b"one"
    assert cat(FS(store, at=3), "/f") == b"two"
    assert cat(FS(store, at=4), "/f") == b"three"
    assert sorted(FS(store, at=2).listdir(ROOT_ID)) == ["f"]
    assert sorted(FS(store, at=3).listdir(ROOT_ID)) == ["f", "later"]
    assert sorted(FS(store, at=5).listdir(ROOT_ID)) == ["later"]
    assert FS(store, at=1).listdir(ROOT_ID) == {}
    assert [v.version for v in FS(store, at=3).versions(node)] == [1, 2]
    with raises(errno.ENOENT):
        FS(store, at=5).stat(node)
    assert FS(store, at=2).stat(node).version == 1


def test_time_travel_bounds(store, fs):
    make_file(fs, ROOT_ID, "f")
    fs.commit("c")
    with raises(errno.ENOENT):
        FS(store, at=0)
    with raises(errno.ENOENT):
        FS(store, at=3)
    with raises(errno.ENOENT):
        FS(store, at=-1)
    assert FS(store, at=2).as_of == 2


def test_time_travel_views_are_read_only(store, fs):
    d = fs.mkdir(ROOT_ID, "d")
    node = make_file(fs, ROOT_ID, "f", b"x")
    series = fs.create(ROOT_ID, "s.series", fmt="series")
    fs.symlink(ROOT_ID, "l", "f")
    fs.commit("c")
    old = FS(store, at=2)
    writes = [
        lambda: old.create(ROOT_ID, "new"),
        lambda: old.mkdir(ROOT_ID, "new"),
        lambda: old.symlink(ROOT_ID, "new", "x"),
        lambda: old.mknod(ROOT_ID, "new", st.S_IFIFO | 0o644),
        lambda: old.link(node, ROOT_ID, "new"),
        lambda: old.write_content(node, [b"y"]),
        lambda: old.truncate(node, 0),
        lambda: old.setattr(node, mode=0o600),
        lambda: old.setxattr(node, "user.a", b"1"),
        lambda: old.unlink(ROOT_ID, "f"),
        lambda: old.rmdir(ROOT_ID, "d"),
        lambda: old.rename(ROOT_ID, "f", d, "f"),
        lambda: old.append_series(series, pa.table({"timestamp": [1], "v": [1]})),
        lambda: old.init_root(),
    ]
    for write in writes:
        with raises(errno.EROFS):
            write()
    assert not old.dirty
    assert old.commit("nothing") is None
    assert store.last_txn() == 2
    assert cat(old, "/f") == b"x"
    assert sorted(old.listdir(ROOT_ID)) == ["d", "f", "l", "s.series"]


# ---------------------------------------------------------------- transactions


def test_abort_drops_everything(store, fs):
    keep = make_file(fs, ROOT_ID, "keep", b"k")
    fs.commit("c")
    new_dir = fs.mkdir(ROOT_ID, "new")
    new_file = make_file(fs, new_dir, "f", b"x")
    fs.write_content(keep, [b"changed"])
    fs.setxattr(keep, "user.a", b"1")
    fs.abort()
    assert not fs.dirty
    assert fs.listdir(ROOT_ID) == {"keep": keep}
    with raises(errno.ENOENT):
        fs.resolve("/new")
    for node in (new_dir, new_file):
        with raises(errno.ENOENT):
            fs.stat(node)
    assert cat(fs, "/keep") == b"k"
    assert fs.listxattr(keep) == []
    assert fs.commit("nothing") is None
    assert store.last_txn() == 2
    # the view still works after the abort
    make_file(fs, ROOT_ID, "after", b"a")
    assert fs.commit("after") == 3
    assert sorted(FS(store).listdir(ROOT_ID)) == ["after", "keep"]
    assert_consistent(store)


def test_abort_undoes_renames(store, fs):
    a = fs.mkdir(ROOT_ID, "a")
    b = fs.mkdir(ROOT_ID, "b")
    node = make_file(fs, a, "f", b"x")
    sub = fs.mkdir(a, "sub")
    fs.commit("c")
    fs.rename(a, "f", b, "f")
    fs.rename(a, "sub", b, "sub")
    fs.abort()
    assert fs.listdir(a) == {"f": node, "sub": sub}
    assert fs.listdir(b) == {}
    assert cat(fs, "/a/f") == b"x"
    assert fs.stat(node).version == 1
    # the aborted move of sub under b must not make b look like it is inside sub
    fs.rename(ROOT_ID, "b", sub, "b")
    fs.commit("mv")
    fresh = FS(store)
    assert fresh.resolve("/a/sub/b") == b
    assert cat(fresh, "/a/f") == b"x"
    assert_consistent(store)


def test_commit_with_nothing_pending(store, fs):
    assert fs.commit("nothing") is None
    assert store.last_txn() == 1


def test_transactions_newest_first(store, fs):
    fs.create(ROOT_ID, "a")
    fs.commit("pond copy a")
    fs.create(ROOT_ID, "b")
    fs.create(ROOT_ID, "c")
    fs.commit("pond copy b c")
    txns = FS(store).transactions()
    assert [(t.txn, t.command) for t in txns] == [
        (3, "pond copy b c"), (2, "pond copy a"), (1, "init")]
    assert txns[0].timestamp_ns >= txns[1].timestamp_ns >= txns[2].timestamp_ns
    assert all(t.user for t in txns)
    assert [t.txn for t in FS(store, at=2).transactions()] == [2, 1]


def test_one_transaction_holds_many_changes(store, fs):
    for i in range(10):
        make_file(fs, ROOT_ID, f"f{i}", b"x")
    assert fs.commit("ten") == 2
    fresh = FS(store)
    assert len(fresh.listdir(ROOT_ID)) == 10
    assert {fresh.stat(n).txn for n in fresh.listdir(ROOT_ID).values()} == {2}


# ---------------------------------------------------------------- directory deltas


@pytest.mark.slow  # 600 commits: ~30 s on the Delta oplog
def test_directory_versions_are_deltas_with_periodic_snapshots(store, fs):
    d = fs.mkdir(ROOT_ID, "d")
    fs.commit("mkdir")
    added = 600
    for i in range(added):
        fs.create(d, f"f{i:04}")
        fs.commit(f"add {i}")
    mid = store.last_txn() - 100
    for i in range(0, 100, 10):  # ten single removals ...
        fs.unlink(d, f"f{i:04}")
        fs.commit(f"rm {i}")
    for i in range(100, 150):  # ... and fifty in one transaction
        fs.unlink(d, f"f{i:04}")
    fs.rename(d, "f0599", d, "renamed")
    fs.commit("rm many")

    expected = {f"f{i:04}" for i in range(added)}
    expected -= {f"f{i:04}" for i in range(0, 100, 10)} | {f"f{i:04}" for i in range(100, 150)}
    expected = (expected - {"f0599"}) | {"renamed"}
    assert set(FS(store).listdir(d)) == expected
    assert set(FS(store, at=mid).listdir(d)) == {f"f{i:04}" for i in range(added - 100)}

    rows = [r for r in store.partition(d, store.last_txn()) if r.node_id == d]
    assert len(rows) == 1 + added + 11  # mkdir, the adds, the removals
    snapshots = [r for r in rows if r.snapshot]
    deltas = [r for r in rows if not r.snapshot]
    assert rows[0].snapshot
    assert 2 <= len(snapshots) <= len(rows) // (SNAPSHOT_EVERY // 2)
    assert len(deltas) > 0.9 * len(rows)
    assert max(len(r.entries) for r in deltas) <= 52  # the 50 removals, a rename's 2 ops
    assert sum(len(r.entries) for r in rows) < 3 * added  # not a full listing per version
    assert_consistent(store)


# ---------------------------------------------------------------- series


def batch(times: list[int], **columns: list) -> pa.Table:
    return pa.table({"timestamp": pa.array(times, pa.int64()), **columns})


def read_parquet_of(fs: FS, node: str) -> pa.Table:
    with fs.open_read(node) as f:
        return pq.read_table(io.BytesIO(f.read()))


def test_series_union_is_time_ordered_with_schema_drift(store, fs):
    node = fs.create(ROOT_ID, "x.series", fmt="series")
    fs.append_series(node, batch([10, 30, 20], a=[1.0, 3.0, 2.0], b=["p", "r", "q"]))
    fs.commit("v1")
    fs.append_series(node, batch([25, 5], a=[2.5, 0.5]))  # no column b; overlaps v1
    fs.commit("v2")
    fs.append_series(node, batch([40], b=["s"], c=[True]))  # no a; new column c
    fs.commit("v3")

    fresh = FS(store)
    table = read_parquet_of(fresh, node)
    assert table.column("timestamp").to_pylist() == [5, 10, 20, 25, 30, 40]
    assert table.column("a").to_pylist() == [0.5, 1.0, 2.0, 2.5, 3.0, None]
    assert table.column("b").to_pylist() == [None, "p", "q", None, "r", "s"]
    assert table.column("c").to_pylist() == [None] * 5 + [True]
    assert fresh.read_series(node).equals(table)
    with fresh.open_read(node) as f:
        assert fresh.stat(node).size == len(f.read())
    versions = fresh.versions(node)
    assert [(v.min_time, v.max_time) for v in versions] == [(10, 30), (5, 25), (40, 40)]
    assert_consistent(store)


def test_series_appends_in_one_transaction_merge(store, fs):
    node = fs.create(ROOT_ID, "x.series", fmt="series")
    fs.append_series(node, batch([3, 1], v=[3, 1]))
    fs.append_series(node, batch([2], v=[2]))
    assert fs.read_series(node).column("v").to_pylist() == [1, 2, 3]
    fs.commit("both")
    fresh = FS(store)
    assert fresh.read_series(node).column("v").to_pylist() == [1, 2, 3]
    assert len(fresh.versions(node)) == 1


def test_series_with_timestamp_column_type(store, fs):
    node = fs.create(ROOT_ID, "t.series", fmt="series")
    stamps = pa.array([3_000, 1_000, 2_000], pa.timestamp("ms", tz="UTC"))
    fs.append_series(node, pa.table({"when": stamps, "v": [3, 1, 2]}))
    fs.commit("t")
    fresh = FS(store)
    assert fresh.read_series(node).column("v").to_pylist() == [1, 2, 3]
    assert fresh.read_series(node, 1_500, 2_500).column("v").to_pylist() == [2]
    assert fresh.get(node).time_column == "when"


def test_read_series_reads_only_overlapping_versions(store, fs, monkeypatch):
    node = fs.create(ROOT_ID, "x.series", fmt="series")
    for low in (0, 100, 200, 300):
        fs.append_series(node, batch([low + 9, low, low + 5], v=[low + 9, low, low + 5]))
        fs.commit(f"batch {low}")
    fresh = FS(store)
    by_version = {v.version: (v.min_time, v.max_time) for v in fresh.versions(node)}
    read: list[tuple[int, int]] = []
    real_inline, real_object = store.read_inline, store.open_object

    def spy_inline(version):
        read.append(by_version[version.version])
        return real_inline(version)

    def spy_object(digest):
        read.append(("object", digest))
        return real_object(digest)

    monkeypatch.setattr(store, "read_inline", spy_inline)
    monkeypatch.setattr(store, "open_object", spy_object)

    table = fresh.read_series(node, 103, 205)
    assert table.column("v").to_pylist() == [105, 109, 200, 205]
    assert sorted(set(read)) == [(100, 109), (200, 209)]
    read.clear()
    assert fresh.read_series(node, start=301).column("v").to_pylist() == [305, 309]
    assert sorted(set(read)) == [(300, 309)]
    read.clear()
    assert fresh.read_series(node, end=0).column("v").to_pylist() == [0]
    assert sorted(set(read)) == [(0, 9)]
    read.clear()
    assert fresh.read_series(node, 10, 99).num_rows == 0
    assert read == []


def test_series_metadata_changes_do_not_repeat_rows(store, fs):
    a = fs.mkdir(ROOT_ID, "a")
    node = fs.create(a, "x.series", fmt="series")
    fs.append_series(node, batch([1, 2], v=[1, 2]))
    fs.commit("v1")
    fs.setattr(node, mode=0o600)
    fs.setxattr(node, "user.unit", b"m")
    assert fs.read_series(node).column("v").to_pylist() == [1, 2]
    fs.commit("meta")
    fs.rename(a, "x.series", ROOT_ID, "moved.series")
    fs.commit("mv")
    fs.append_series(node, batch([3], v=[3]))
    fs.commit("v2")
    fresh = FS(store)
    assert fresh.read_series(node).column("v").to_pylist() == [1, 2, 3]
    assert read_parquet_of(fresh, node).num_rows == 3
    assert_consistent(store)


def test_series_moved_away_and_back_keeps_every_batch(store, fs):
    a = fs.mkdir(ROOT_ID, "a")
    b = fs.mkdir(ROOT_ID, "b")
    node = fs.create(a, "x.series", fmt="series")
    fs.append_series(node, batch([1], v=[1]))
    fs.commit("v1")
    fs.rename(a, "x.series", b, "x.series")
    fs.append_series(node, batch([2], v=[2]))  # this batch's row is in b's partition
    fs.commit("away")
    fs.rename(b, "x.series", a, "x.series")
    fs.append_series(node, batch([3], v=[3]))
    fs.commit("back")
    fresh = FS(store)
    assert fresh.read_series(node).column("v").to_pylist() == [1, 2, 3]
    assert_consistent(store)


def test_series_errors(fs):
    data = make_file(fs, ROOT_ID, "plain", b"x")
    series = fs.create(ROOT_ID, "s.series", fmt="series")
    with raises(errno.EINVAL):
        fs.append_series(data, batch([1], v=[1]))
    with raises(errno.EINVAL):
        fs.read_series(data)
    with raises(errno.EINVAL):
        fs.append_series(series, pa.table({"v": [1], "w": [2]}))  # no time column
    with raises(errno.EINVAL):
        fs.append_series(series, batch([1], v=[1]), time_column="missing")


def test_empty_series_reads_as_an_empty_parquet_file(store, fs):
    node = fs.create(ROOT_ID, "s.series", fmt="series")
    fs.commit("c")
    fresh = FS(store)
    assert read_parquet_of(fresh, node).num_rows == 0
    with fresh.open_read(node) as f:
        assert fresh.stat(node).size == len(f.read())


# ---------------------------------------------------------------- glob and walk


def test_glob_captures(store, fs):
    for path in ("/a/x/x1.series", "/a/y/x2.series", "/a/y/other.txt", "/b/x3.series",
                 "/a/y/deep/x4.series", "/a/.hidden/x5.series"):
        mkdirs(fs, path.rsplit("/", 1)[0])
        path_file(fs, path)
    fs.commit("c")
    fresh = FS(store)
    found = [(p, n, c) for p, n, c in fresh.glob("/a/*/x*.series")]
    assert [(p, c) for p, _, c in found] == [
        ("/a/x/x1.series", ("x", "1")), ("/a/y/x2.series", ("y", "2"))]
    assert all(fresh.resolve(p) == n for p, n, _ in found)
    assert [(p, c) for p, _, c in fresh.glob("/**/*.series")] == [
        ("/a/x/x1.series", ("a/x", "x1")),
        ("/a/y/deep/x4.series", ("a/y/deep", "x4")),
        ("/a/y/x2.series", ("a/y", "x2")),
        ("/b/x3.series", ("b", "x3")),
    ]
    assert [p for p, _, _ in fresh.glob("y/*", cwd="/a")] == ["y/deep", "y/other.txt",
                                                              "y/x2.series"]
    assert list(fresh.glob("/nothing/*")) == []


def test_walk_is_depth_first_in_name_order(store, fs):
    for path in ("/z", "/a/c", "/a/b/f", "/a/b/e", "/m"):
        parent = mkdirs(fs, path.rsplit("/", 1)[0]) if path.count("/") > 1 else ROOT_ID
        make_file(fs, parent, path.rsplit("/", 1)[1])
    fs.symlink(ROOT_ID, "link", "/a")
    fs.commit("c")
    fresh = FS(store)
    assert [p for p, _ in fresh.walk()] == [
        "/", "/a", "/a/b", "/a/b/e", "/a/b/f", "/a/c", "/link", "/m", "/z"]
    assert [p for p, _ in fresh.walk("b", cwd="/a")] == ["/a/b", "/a/b/e", "/a/b/f"]
    assert [p for p, _ in fresh.walk("/link")] == ["/a", "/a/b", "/a/b/e", "/a/b/f", "/a/c"]
    assert all(fresh.resolve(p, follow=False) == n for p, n in fresh.walk())


# ---------------------------------------------------------------- dynamic nodes


class Constant(DynamicFile):
    def __init__(self, data: bytes, mtime: int):
        self.data = data
        self.mtime = mtime

    def mtime_ns(self) -> int:
        return self.mtime

    def size(self) -> int:
        return len(self.data)

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data)


class Repeat(DynamicDirectory):
    """Config ``names=a,b;source=/path``: a file per name holding name + the source's bytes."""

    def __init__(self, fs: FS, config: bytes):
        fields = dict(item.split("=", 1) for item in config.decode().split(";"))
        self.fs = fs
        self.names = fields["names"].split(",")
        self.source = fields["source"]

    def mtime_ns(self) -> int:
        return self.fs.stat(self.fs.resolve(self.source)).mtime_ns

    def entries(self):
        data = read_all(self.fs, self.fs.resolve(self.source))
        for name in self.names:
            yield name, Constant(name.encode() + b":" + data, self.mtime_ns())


def validate_repeat(config: bytes) -> None:
    text = config.decode()
    if "names=" not in text or "source=" not in text:
        raise FsError(errno.EINVAL, "repeat: config needs 'names' and 'source'")


@pytest.fixture
def registry() -> FactoryRegistry:
    registry = FactoryRegistry()
    registry.register("repeat", lambda fs, config, node_id: Repeat(fs, config), validate_repeat)
    registry.register("constant", lambda fs, config, node_id: Constant(config, 5),
                      lambda config: None)
    return registry


def test_dynamic_directory(store, registry):
    fs = FS(store, factories=registry)
    make_file(fs, ROOT_ID, "src", b"data")
    dyn = fs.create_dynamic(ROOT_ID, "computed", "repeat", b"names=a,b;source=/src")
    fs.commit("dyn")

    fresh = FS(store, factories=registry)
    assert fresh.resolve("/computed") == dyn
    assert sorted(fresh.listdir(dyn)) == ["a", "b"]
    assert cat(fresh, "/computed/b") == b"b:data"
    child = fresh.resolve("/computed/a")
    s = fresh.stat(child)
    assert (s.kind, s.size, s.dynamic) == (FILE, len(b"a:data"), True)
    assert s.mode & 0o222 == 0
    d = fresh.stat(dyn)
    assert d.kind == DIRECTORY and st.S_ISDIR(d.mode) and d.dynamic
    assert fresh.lookup(dyn, "missing") is None
    assert [p for p, _ in fresh.walk("/computed")] == ["/computed", "/computed/a", "/computed/b"]

    # content follows its input
    fresh.write_content(fresh.resolve("/src"), [b"changed"])
    assert cat(fresh, "/computed/a") == b"a:changed"
    assert fresh.stat(fresh.resolve("/computed/a")).size == len(b"a:changed")


def test_dynamic_nodes_are_read_only(store, registry):
    fs = FS(store, factories=registry)
    make_file(fs, ROOT_ID, "src", b"data")
    dyn = fs.create_dynamic(ROOT_ID, "computed", "repeat", b"names=a;source=/src")
    fs.commit("dyn")
    fresh = FS(store, factories=registry)
    child = fresh.resolve("/computed/a")
    for write in (
        lambda: fresh.create(dyn, "x"),
        lambda: fresh.mkdir(dyn, "x"),
        lambda: fresh.symlink(dyn, "x", "y"),
        lambda: fresh.unlink(dyn, "a"),
        lambda: fresh.rename(dyn, "a", ROOT_ID, "stolen"),
        lambda: fresh.rename(ROOT_ID, "src", dyn, "x"),
        lambda: fresh.write_content(child, [b"x"]),
        lambda: fresh.truncate(child, 0),
        lambda: fresh.setattr(child, mode=0o777),
        lambda: fresh.setxattr(child, "user.a", b"1"),
        lambda: fresh.mknod(dyn, "x", st.S_IFIFO | 0o644),
        lambda: fresh.link(fresh.resolve("/src"), dyn, "x"),
    ):
        with raises(errno.EROFS):
            write()
    for node in (child, dyn):  # like an immutable file on ext4
        with raises(errno.EPERM):
            fresh.link(node, ROOT_ID, "x")
    assert not fresh.dirty


def test_dynamic_file_and_config_change(store, registry):
    fs = FS(store, factories=registry)
    make_file(fs, ROOT_ID, "src", b"data")
    const = fs.create_dynamic(ROOT_ID, "const", "constant", b"fixed bytes")
    dyn = fs.create_dynamic(ROOT_ID, "computed", "repeat", b"names=a;source=/src")
    fs.commit("dyn")
    fresh = FS(store, factories=registry)
    assert cat(fresh, "/const") == b"fixed bytes"
    assert fresh.stat(const).size == len(b"fixed bytes")
    with raises(errno.EROFS):
        fresh.write_content(const, [b"x"])
    assert cat(fresh, "/computed/a") == b"a:data"

    fresh.set_dynamic_config(dyn, b"names=a,z;source=/src")
    fresh.setattr(dyn, uid=42)  # a stored dynamic node's own attributes can change
    assert sorted(fresh.listdir(dyn)) == ["a", "z"]
    fresh.commit("reconfigure")
    newest = FS(store, factories=registry)
    assert sorted(newest.listdir(dyn)) == ["a", "z"]
    assert newest.stat(dyn).uid == 42
    assert newest.stat(dyn).version == 2
    assert sorted(FS(store, at=2, factories=registry).listdir(dyn)) == ["a"]


def test_dynamic_child_of_a_reconfigured_node_is_fresh(store, registry):
    fs = FS(store, factories=registry)
    make_file(fs, ROOT_ID, "one", b"1")
    make_file(fs, ROOT_ID, "two", b"2")
    dyn = fs.create_dynamic(ROOT_ID, "computed", "repeat", b"names=a;source=/one")
    fs.commit("dyn")
    child = fs.resolve("/computed/a")
    assert read_all(fs, child) == b"a:1"
    fs.set_dynamic_config(dyn, b"names=a;source=/two")
    assert read_all(fs, child) == b"a:2"  # an id held across the change (a FUSE inode)
    assert cat(fs, "/computed/a") == b"a:2"
    assert fs.stat(child).size == 3
    fs.set_dynamic_config(dyn, b"names=b;source=/two")
    with raises(errno.ENOENT):
        fs.stat(child)


def test_computed_ids_work_in_any_view(store, registry):
    fs = FS(store, factories=registry)
    make_file(fs, ROOT_ID, "src", b"data")
    fs.create_dynamic(ROOT_ID, "computed", "repeat", b"names=a;source=/src")
    fs.commit("dyn")
    child = fs.resolve("/computed/a")
    other = FS(store, factories=registry)  # never listed /computed
    assert read_all(other, child) == b"a:data"
    assert other.stat(child).size == len(b"a:data")
    with raises(errno.ENOENT):
        other.stat(child[:-1] + "zz")


def test_unknown_factory_and_bad_config_are_einval(store, registry):
    fs = FS(store, factories=registry)
    with raises(errno.EINVAL):
        fs.create_dynamic(ROOT_ID, "x", "no-such-factory", b"")
    with raises(errno.EINVAL):
        fs.create_dynamic(ROOT_ID, "x", "repeat", b"names=a")
    assert fs.listdir(ROOT_ID) == {}
    node = fs.create_dynamic(ROOT_ID, "ok", "constant", b"x")
    with raises(errno.EINVAL):
        fs.set_dynamic_config(fs.create(ROOT_ID, "plain"), b"x")
    fs.commit("ok")
    # a view that does not know the factory reports it by name
    with raises(errno.EINVAL) as info:
        read_all(FS(store), node)
    assert "constant" in str(info.value)


# ---------------------------------------------------------------- against a model


def snapshot_of(fs: FS) -> dict[str, bytes | None]:
    """Every path below the root: file content, or None for a directory."""
    return {path: None if fs.kind(node) == DIRECTORY else read_all(fs, node)
            for path, node in fs.walk() if path != "/"}


def links_of(fs: FS) -> set[frozenset[str]]:
    """The paths naming each file, as sets; asserts that each file's nlink counts them."""
    paths: dict[str, set[str]] = {}
    for path, node in fs.walk():
        if fs.kind(node) != DIRECTORY:
            paths.setdefault(node, set()).add(path)
    for node, names in paths.items():
        assert fs.stat(node).nlink == len(names), sorted(names)
    return {frozenset(names) for names in paths.values()}


@pytest.mark.slow  # ~100 commits: ~15 s on the Delta oplog
@pytest.mark.parametrize("in_flight", [False, True], ids=["commit", "two-phase"])
def test_random_operations_match_a_model(store, fs, in_flight, monkeypatch):
    """Random creates, writes, hard links, mkdirs, removals and renames (files and
    directories, into other directories, over existing entries), with commits and aborts,
    against a dict of contents and a dict of which paths name one file.

    ``in_flight``: each commit begins at one step and completes at a later one, with
    operations in between staged on top of the in-flight rows, and one store commit in
    four fails (its rows then go with the next commit)."""
    import random
    from collections import Counter

    rng = random.Random(20241126)
    done: Counter[str] = Counter()
    model: dict[str, bytes | None] = {}
    file_of: dict[str, int] = {}  # path -> which file it names (hard links share one)
    committed = dict(model), dict(file_of)
    history = {store.last_txn(): dict(model)}
    links_history = {store.last_txn(): set()}
    flying = None  # (the Commit, the model it commits)
    real_commit = store.commit

    def flaky_commit(versions, info):
        if rng.random() < 0.25:
            raise FsError(errno.EIO, "injected")
        real_commit(versions, info)

    if in_flight:
        monkeypatch.setattr(store, "commit", flaky_commit)

    def dirs() -> list[str]:
        return ["/"] + sorted(p for p, c in model.items() if c is None)

    def files() -> list[str]:
        return sorted(p for p, c in model.items() if c is not None)

    def join(d: str, name: str) -> str:
        return d.rstrip("/") + "/" + name

    def children(d: str) -> list[str]:
        prefix = d.rstrip("/") + "/"
        return [p for p in model if p.startswith(prefix) and "/" not in p[len(prefix):]]

    def split(path: str) -> tuple[str, str]:
        parent, name = path.rsplit("/", 1)
        return parent or "/", name

    def move(src: str, dst: str) -> None:
        moved = {p: c for p, c in model.items() if p == src or p.startswith(src + "/")}
        files = {p: file_of.pop(p) for p in moved if p in file_of}
        for p in moved:
            del model[p]
        for p, c in moved.items():
            model[dst + p[len(src):]] = c
        for p, f in files.items():
            file_of[dst + p[len(src):]] = f

    def remove(path: str) -> None:
        del model[path]
        file_of.pop(path, None)

    def grouped(of: dict[str, int]) -> set[frozenset[str]]:
        paths: dict[int, set[str]] = {}
        for path, f in of.items():
            paths.setdefault(f, set()).add(path)
        return {frozenset(names) for names in paths.values()}

    for step in range(400):
        op = rng.choice(["create", "create", "write", "link", "mkdir", "unlink", "rmdir",
                         "rename_file", "rename_dir", "commit", "commit"])
        name = f"n{rng.randrange(12)}"
        if op == "create":
            d = rng.choice(dirs())
            if join(d, name) in model:
                continue
            data = rng.randbytes(rng.choice([0, 5, 100]))
            make_file(fs, fs.resolve(d), name, data)
            model[join(d, name)] = data
            file_of[join(d, name)] = step
        elif op == "write" and files():
            path = rng.choice(files())
            data = rng.randbytes(rng.randrange(50))
            fs.write_content(fs.resolve(path), [data])
            for p, f in file_of.items():
                if f == file_of[path]:
                    model[p] = data
        elif op == "link" and files():
            src = rng.choice(files())
            d = rng.choice(dirs())
            if join(d, name) in model:
                continue
            fs.link(fs.resolve(src), fs.resolve(d), name)
            model[join(d, name)] = model[src]
            file_of[join(d, name)] = file_of[src]
        elif op == "mkdir":
            d = rng.choice(dirs())
            if join(d, name) in model:
                continue
            fs.mkdir(fs.resolve(d), name)
            model[join(d, name)] = None
        elif op == "unlink" and files():
            path = rng.choice(files())
            parent, old = split(path)
            fs.unlink(fs.resolve(parent), old)
            remove(path)
        elif op == "rmdir":
            empty = [d for d in dirs() if d != "/" and not children(d)]
            if not empty:
                continue
            path = rng.choice(empty)
            parent, old = split(path)
            fs.rmdir(fs.resolve(parent), old)
            remove(path)
        elif op == "rename_file" and files():
            src = rng.choice(files())
            d = rng.choice(dirs())
            dst = join(d, name)
            if model.get(dst, b"") is None:  # a directory is there
                continue
            (sp, sn), (dp, dn) = split(src), split(dst)
            fs.rename(fs.resolve(sp), sn, fs.resolve(dp), dn)
            if dst in model and file_of[dst] == file_of[src]:
                pass  # two names of one file: rename does nothing
            elif src != dst:
                model.pop(dst, None)
                file_of.pop(dst, None)
                move(src, dst)
        elif op == "rename_dir" and len(dirs()) > 1:
            src = rng.choice(dirs()[1:])
            d = rng.choice(dirs())
            dst = join(d, name)
            if d == src or d.startswith(src + "/"):
                continue
            if dst in model and (model[dst] is not None or (dst != src and children(dst))):
                continue
            (sp, sn), (dp, dn) = split(src), split(dst)
            fs.rename(fs.resolve(sp), sn, fs.resolve(dp), dn)
            if src != dst:
                model.pop(dst, None)
                move(src, dst)
        elif op == "commit" and in_flight:
            if flying is not None:
                commit, expected = flying
                flying = None
                try:
                    commit.store()
                except FsError:
                    assert fs.dirty
                else:
                    txn = commit.finish()
                    history[txn], links_history[txn] = expected[0], grouped(expected[1])
                    committed = expected
                    assert snapshot_of(FS(store)) == expected[0], f"after step {step}"
            elif rng.random() < 0.15:
                fs.abort()
                model, file_of = dict(committed[0]), dict(committed[1])
            else:
                commit = fs.begin_commit(f"step {step}")
                if commit is not None:
                    flying = commit, (dict(model), dict(file_of))
        elif op == "commit":
            if rng.random() < 0.15:
                fs.abort()
                model, file_of = dict(committed[0]), dict(committed[1])
            else:
                txn = fs.commit(f"step {step}")
                if txn is not None:
                    history[txn], links_history[txn] = dict(model), grouped(file_of)
                committed = dict(model), dict(file_of)
                assert snapshot_of(FS(store)) == model, f"after step {step}"
                assert links_of(FS(store)) == grouped(file_of), f"after step {step}"
        else:
            continue
        done[op] += 1
        if step % 50 == 0:
            assert snapshot_of(fs) == model, f"live view at step {step}"
            assert links_of(fs) == grouped(file_of), f"live view at step {step}"

    monkeypatch.setattr(store, "commit", real_commit)
    if flying is not None:
        txn = flying[0].complete()
        history[txn], links_history[txn] = flying[1][0], grouped(flying[1][1])
    fs.commit("last")
    history[store.last_txn()], links_history[store.last_txn()] = dict(model), grouped(file_of)
    assert snapshot_of(FS(store)) == model
    assert links_of(FS(store)) == grouped(file_of)
    assert len(history) > 20
    assert min(done.values()) >= 5 and len(done) == 9, done
    assert any(len(names) > 1 for names in grouped(file_of)), "no file kept two names"
    for txn in rng.sample(sorted(history), 8):
        assert snapshot_of(FS(store, at=txn)) == history[txn], f"as of {txn}"
        assert links_of(FS(store, at=txn)) == links_history[txn], f"as of {txn}"
    assert_consistent(store)


# ---------------------------------------------------------------- more edges


def test_trailing_slash_needs_a_directory(tree):
    assert tree.resolve("/a/b/") == tree.resolve("/a/b")
    with raises(errno.ENOTDIR):
        tree.resolve("/top.txt/")
    # a trailing slash follows a final symlink, as the kernel does
    assert tree.resolve("/dirlink/", follow=False) == tree.resolve("/a/b")
    with raises(errno.ENOTDIR):
        tree.resolve("/a/rel/")


def test_symlink_target_rules(fs):
    with raises(errno.EINVAL):
        fs.symlink(ROOT_ID, "empty", "")
    with raises(errno.EINVAL):
        fs.symlink(ROOT_ID, "nul", "a\0b")
    link = fs.symlink(ROOT_ID, "long", "x/" * 1000)
    assert fs.readlink(link) == "x/" * 1000


def test_walk_of_a_file_is_the_file(tree):
    assert [p for p, _ in tree.walk("/a/b/c/file.txt")] == ["/a/b/c/file.txt"]
    with raises(errno.ENOENT):
        list(tree.walk("/missing"))


def test_changes_inside_a_directory_moved_in_the_same_transaction(store, fs):
    a = fs.mkdir(ROOT_ID, "a")
    d = fs.mkdir(a, "d")
    fs.commit("c")
    fs.rename(a, "d", ROOT_ID, "d")
    node = make_file(fs, d, "inside", b"x")
    tmp = fs.mkdir(d, "tmp")
    fs.rename(d, "tmp", ROOT_ID, "tmp2")
    fs.rmdir(ROOT_ID, "tmp2")
    fs.commit("mv")
    fresh = FS(store)
    assert fresh.listdir(d) == {"inside": node}
    assert sorted(fresh.listdir(ROOT_ID)) == ["a", "d"]
    with raises(errno.ENOENT):
        fresh.stat(tmp)
    assert_consistent(store)


def test_directory_churn_is_snapshotted(store, fs):
    """Adding and removing the same names keeps a listing small but its delta chain long:
    a snapshot must come before replay costs more than the listing itself."""
    d = fs.mkdir(ROOT_ID, "d")
    keep = make_file(fs, d, "keep")
    fs.commit("c")
    for i in range(50):
        make_file(fs, d, "tmp")
        fs.unlink(d, "tmp")
        fs.commit(f"add and remove {i}")  # two entry changes each
    assert FS(store).listdir(d) == {"keep": keep}
    rows = [r for r in store.partition(d, store.last_txn()) if r.node_id == d]
    last_snapshot = max(i for i, r in enumerate(rows) if r.snapshot)
    assert sum(len(r.entries) for r in rows[last_snapshot + 1:]) <= 64
    assert sum(r.snapshot for r in rows) >= 2  # mkdir's, then one forced by the churn


# ---------------------------------------------------------------- several writers (rebase)
# Two views of one store stand for two writers: ``early`` commits first, ``late`` was made
# against the same transaction and commits after it (its changes are rebased). The rules
# are the README's "Several writers" section.


@pytest.fixture
def writers(store) -> tuple[FS, FS]:
    """Two writable views of ``store``, made against its newest transaction."""
    return FS(store), FS(store)


def names(store, path: str = "/") -> list[str]:
    fs = FS(store)
    return sorted(fs.listdir(fs.resolve(path)))


def test_writers_merge_directories_name_by_name(store, writers):
    early, late = writers
    make_file(early, ROOT_ID, "a", b"A")
    make_file(late, ROOT_ID, "b", b"B")
    assert early.commit("a") == 2
    assert late.commit("b") == 3
    assert names(store) == ["a", "b"]
    assert cat(FS(store), "/a") == b"A" and cat(FS(store), "/b") == b"B"
    assert late.as_of == 3 and sorted(late.listdir(ROOT_ID)) == ["a", "b"]
    assert_consistent(store)


def test_a_file_both_wrote_holds_the_later_content_the_earlier_in_history(store, fs):
    f = make_file(fs, ROOT_ID, "f", b"zero")
    fs.commit("f")
    early, late = FS(store), FS(store)
    late.write_content(f, [b"late"])
    early.write_content(f, [b"early"])
    early.commit("early")
    late.commit("late")
    assert cat(FS(store), "/f") == b"late"
    versions = FS(store).versions(f)
    assert [v.version for v in versions] == [1, 2, 3]  # made, early's, late's
    assert read_all(FS(store, at=3), f) == b"early"
    assert_consistent(store)


def test_changes_of_different_fields_of_one_file_both_stand(store, fs):
    f = make_file(fs, ROOT_ID, "f", b"zero")
    fs.commit("f")
    early, late = FS(store), FS(store)
    early.write_content(f, [b"early"])
    late.setattr(f, mode=0o600)
    early.commit("write")
    late.commit("chmod")
    assert cat(FS(store), "/f") == b"early"
    assert FS(store).stat(f).mode & 0o777 == 0o600
    assert_consistent(store)


def test_a_file_the_earlier_commit_removed_stays_removed(store, fs):
    f = make_file(fs, ROOT_ID, "f", b"zero")
    fs.commit("f")
    early, late = FS(store), FS(store)
    early.unlink(ROOT_ID, "f")
    late.write_content(f, [b"late"])
    late.link(f, ROOT_ID, "g")  # a new name of the removed file: dropped too
    early.commit("rm")
    late.commit("write")
    assert names(store) == []
    assert FS(store).versions(f)[-1].deleted
    assert_consistent(store)


def test_a_file_the_later_commit_removes_is_removed(store, fs):
    f = make_file(fs, ROOT_ID, "f", b"zero")
    fs.commit("f")
    early, late = FS(store), FS(store)
    early.write_content(f, [b"early"])
    late.unlink(ROOT_ID, "f")
    early.commit("write")
    late.commit("rm")
    assert names(store) == []
    assert read_all(FS(store, at=3), f) == b"early"
    assert_consistent(store)


def test_a_file_both_removed_is_removed_once(store, fs):
    f = make_file(fs, ROOT_ID, "f", b"zero")
    fs.commit("f")
    early, late = FS(store), FS(store)
    early.unlink(ROOT_ID, "f")
    late.unlink(ROOT_ID, "f")
    early.commit("rm")
    late.commit("rm again")
    assert names(store) == []
    assert sum(v.deleted for v in FS(store).versions(f)) == 1
    assert_consistent(store)


def test_entries_made_in_a_directory_the_earlier_commit_removed_are_dropped(store, fs):
    d = fs.mkdir(ROOT_ID, "d")
    fs.commit("d")
    early, late = FS(store), FS(store)
    early.rmdir(ROOT_ID, "d")
    sub = late.mkdir(d, "sub")
    make_file(late, sub, "deep", b"x")
    make_file(late, d, "f", b"y")
    make_file(late, ROOT_ID, "kept", b"z")
    early.commit("rmdir")
    late.commit("files in d")
    assert names(store) == ["kept"]
    assert FS(store).versions(sub) == []  # never committed
    assert_consistent(store)


def test_a_name_both_created_as_files_holds_the_later_one(store, writers):
    early, late = writers
    first = make_file(early, ROOT_ID, "f", b"early")
    second = make_file(late, ROOT_ID, "f", b"late")
    early.commit("early f")
    late.commit("late f")
    fs = FS(store)
    assert fs.lookup(ROOT_ID, "f") == second and cat(fs, "/f") == b"late"
    assert fs.versions(first)[-1].deleted  # replaced, as by rename(2); kept in history
    assert read_all(FS(store, at=2), first) == b"early"
    assert_consistent(store)


def test_a_name_both_created_as_different_kinds(store, fs):
    # The earlier one a directory with entries: the later file is dropped.
    early, late = FS(store), FS(store)
    d = early.mkdir(ROOT_ID, "x")
    make_file(early, d, "inside", b"i")
    make_file(late, ROOT_ID, "x", b"file")
    early.commit("dir x")
    late.commit("file x")
    assert FS(store).kind(FS(store).resolve("/x")) == "directory"
    assert names(store, "/x") == ["inside"]
    # The earlier one a file (or an empty directory): the later directory replaces it.
    early, late = FS(store), FS(store)
    make_file(early, ROOT_ID, "y", b"file")
    e = early.mkdir(ROOT_ID, "z")
    y = late.mkdir(ROOT_ID, "y")
    make_file(late, y, "in-y", b"1")
    make_file(late, ROOT_ID, "z", b"file z")
    early.commit("file y, empty dir z")
    late.commit("dir y, file z")
    fs = FS(store)
    assert fs.kind(fs.resolve("/y")) == "directory" and names(store, "/y") == ["in-y"]
    assert cat(fs, "/z") == b"file z" and fs.versions(e)[-1].deleted
    assert_consistent(store)


def test_a_directory_both_made_with_entries_merges(store, writers):
    early, late = writers
    a = early.mkdir(ROOT_ID, "d")
    make_file(early, a, "from-early", b"e")
    b = late.mkdir(ROOT_ID, "d")
    make_file(late, b, "from-late", b"l")
    sub = late.mkdir(b, "sub")
    make_file(late, sub, "deep", b"deep")
    early.commit("early d")
    late.commit("late d")
    fs = FS(store)
    assert fs.resolve("/d") == a
    assert names(store, "/d") == ["from-early", "from-late", "sub"]
    assert cat(fs, "/d/from-late") == b"l" and cat(fs, "/d/sub/deep") == b"deep"
    assert_consistent(store)


def test_a_rename_of_a_name_the_earlier_commit_moved_is_dropped(store, fs):
    f = make_file(fs, ROOT_ID, "f", b"f")
    d = fs.mkdir(ROOT_ID, "d")
    fs.mkdir(ROOT_ID, "e")
    fs.commit("f, d, e")
    early, late = FS(store), FS(store)
    early.rename(ROOT_ID, "f", d, "moved")
    late.rename(ROOT_ID, "f", ROOT_ID, "renamed")
    late.rename(ROOT_ID, "e", d, "e")  # a move nobody else made stands
    early.commit("mv f d/moved")
    late.commit("mv f renamed; mv e d/e")
    fs = FS(store)
    assert names(store) == ["d"] and names(store, "/d") == ["e", "moved"]
    assert fs.resolve("/d/moved") == f and fs.stat(f).nlink == 1
    assert_consistent(store)


def test_a_rename_into_a_directory_the_earlier_commit_removed_is_undone(store, fs):
    fs.mkdir(ROOT_ID, "d")
    f = make_file(fs, ROOT_ID, "f", b"f")
    fs.commit("d, f")
    early, late = FS(store), FS(store)
    early.rmdir(ROOT_ID, "d")
    late.rename(ROOT_ID, "f", late.resolve("/d"), "f")
    early.commit("rmdir d")
    late.commit("mv f d/")
    assert names(store) == ["f"] and FS(store).resolve("/f") == f
    assert_consistent(store)


def test_a_directory_the_earlier_commit_put_entries_in_is_not_removed(store, fs):
    d = fs.mkdir(ROOT_ID, "d")
    fs.commit("d")
    early, late = FS(store), FS(store)
    make_file(early, d, "new", b"n")
    late.rmdir(ROOT_ID, "d")
    early.commit("d/new")
    late.commit("rmdir d")
    assert names(store) == ["d"] and names(store, "/d") == ["new"]
    assert_consistent(store)


def test_a_series_both_appended_to_holds_both_batches(store, fs):
    s = fs.create(ROOT_ID, "s.series", fmt="series")
    fs.append_series(s, pa.table({"timestamp": pa.array([1], pa.timestamp("ms")),
                                  "v": [1.0]}))
    fs.commit("series")
    early, late = FS(store), FS(store)
    early.append_series(s, pa.table({"timestamp": pa.array([2], pa.timestamp("ms")),
                                     "v": [2.0]}))
    late.append_series(s, pa.table({"timestamp": pa.array([3], pa.timestamp("ms")),
                                    "v": [3.0]}))
    early.commit("early rows")
    late.commit("late rows")
    assert FS(store).read_series(s).column("v").to_pylist() == [1.0, 2.0, 3.0]
    assert_consistent(store)


def test_a_view_follows_other_writers_with_its_changes_on_top(store, writers):
    early, late = writers
    make_file(early, ROOT_ID, "theirs", b"t")
    early.commit("theirs")
    mine = make_file(late, ROOT_ID, "mine", b"m")
    followed = late.follow()
    assert {v.node_id for v in followed} >= {early.resolve("/theirs"), ROOT_ID}
    assert sorted(late.listdir(ROOT_ID)) == ["mine", "theirs"]  # uncommitted, on top
    assert names(store) == ["theirs"]
    late.commit("mine")
    assert names(store) == ["mine", "theirs"] and FS(store).resolve("/mine") == mine
    assert_consistent(store)


def test_large_series_batches_are_objects_and_time_travel(store, fs):
    node = fs.create(ROOT_ID, "big.series", fmt="series")
    noise = [int.from_bytes(os.urandom(4), "little") for _ in range(20_000)]  # incompressible
    first = batch(list(range(0, 40_000, 2)), v=noise)
    fs.append_series(node, first)
    t1 = fs.commit("big")
    fs.append_series(node, batch([1, 3], v=[0.5, 1.5]))
    fs.commit("small")
    fresh = FS(store)
    assert fresh.versions(node)[0].inline is False
    assert fresh.read_series(node).num_rows == 20_002
    assert fresh.read_series(node, 0, 3).column("timestamp").to_pylist() == [0, 1, 2, 3]
    old = FS(store, at=t1)
    assert old.read_series(node).equals(first.sort_by("timestamp"))
    with old.open_read(node) as f:
        data = f.read()
    assert old.stat(node).size == len(data)
    assert pq.read_table(io.BytesIO(data)).num_rows == 20_000
    assert_consistent(store)


# ---------------------------------------------------------------- commits in flight


@contextmanager
def store_commit_held(store: Persistence, monkeypatch) -> Iterator[threading.Event]:
    """While the context is open, the store's commit waits (in whatever thread called it)
    until the event yielded is set; the event is set on leaving."""
    release = threading.Event()
    started = threading.Event()
    real = store.commit

    def held(versions, info):
        started.set()
        assert release.wait(30), "the test never released the commit"
        real(versions, info)

    monkeypatch.setattr(store, "commit", held)
    release.started = started  # type: ignore[attr-defined]
    try:
        yield release
    finally:
        release.set()


def test_a_commit_in_flight_does_not_hold_the_view(store, fs, monkeypatch):
    """While the store commits (in another thread), the view reads the in-flight state and
    stages new changes on top of it; the next commit writes those."""
    a = path_file(fs, "/a", b"one")
    d = fs.mkdir(ROOT_ID, "d")
    path_file(fs, "/d/x", b"ex")
    with store_commit_held(store, monkeypatch) as release:
        result: list[int | None] = []
        worker = threading.Thread(target=lambda: result.append(fs.commit("first")))
        worker.start()
        assert release.started.wait(30)
        assert not fs.dirty  # everything is in flight
        # Reads see the in-flight state (and take no lock the commit holds).
        assert sorted(fs.listdir(ROOT_ID)) == ["a", "d"]
        assert cat(fs, "/d/x") == b"ex"
        assert fs.stat(a).version == 1 and fs.stat(a).txn == 2
        assert fs.loaded(a)
        # Changes staged on top: versions continue from the in-flight ones.
        fs.write_content(a, [b"two"])
        assert fs.stat(a).version == 2
        fs.rename(d, "x", ROOT_ID, "y")
        fs.unlink(ROOT_ID, "a")
        path_file(fs, "/a", b"new a")
        assert fs.dirty
        with raises(errno.EBUSY):
            fs.begin_commit("meanwhile")
        with raises(errno.EBUSY):
            fs.abort()
        assert FS(store).as_of == 1  # nothing committed yet
        release.set()
        worker.join(30)
    assert result == [2]
    first = FS(store)
    assert sorted(first.listdir(ROOT_ID)) == ["a", "d"]
    assert cat(first, "/a") == b"one" and cat(first, "/d/x") == b"ex"
    assert fs.dirty
    assert fs.commit("second") == 3
    second = FS(store)
    assert sorted(second.listdir(ROOT_ID)) == ["a", "d", "y"]
    assert cat(second, "/a") == b"new a" and cat(second, "/y") == b"ex"
    assert [(v.version, v.txn, v.deleted) for v in second.versions(a)] == [
        (1, 2, False), (2, 3, True)]  # the write and the removal are one version
    assert_consistent(store)


def commit_holding(fs: FS, *held: str) -> int | None:
    commit = fs.begin_commit("c", hold=held)
    return None if commit is None else commit.complete()


def test_held_new_nodes_stay_out_of_a_commit_and_go_in_the_next(store, fs):
    """A file created and not yet closed (held) is left out of a commit with its entry,
    while everything else in the same directory commits; once released it commits whole."""
    d = fs.mkdir(ROOT_ID, "d")
    kept = path_file(fs, "/d/kept", b"closed")
    fs.commit("first")
    tick()
    held = path_file(fs, "/d/open", b"half")
    path_file(fs, "/d/other", b"also closed")
    fs.write_content(kept, [b"closed again"])
    assert commit_holding(fs, held) == 3
    fresh = FS(store)
    assert sorted(fresh.listdir(d)) == ["kept", "other"]
    assert cat(fresh, "/d/kept") == b"closed again"
    assert fs.dirty and sorted(fs.listdir(d)) == ["kept", "open", "other"]  # the view keeps it
    assert commit_holding(fs, held) is None  # only held changes: nothing to commit
    fs.write_content(held, [b"whole"])
    assert fs.commit("released") == 4
    fresh = FS(store)
    assert sorted(fresh.listdir(d)) == ["kept", "open", "other"]
    assert cat(fresh, "/d/open") == b"whole"
    assert fresh.stat(d).version == fs.stat(d).version
    assert_consistent(store)


def test_a_held_node_renamed_over_a_file_keeps_the_old_file_committed(store, fs):
    old = path_file(fs, "/f", b"old, closed")
    fs.commit("first")
    held = path_file(fs, "/tmp", b"")
    fs.rename(ROOT_ID, "tmp", ROOT_ID, "f")
    sub = fs.mkdir(ROOT_ID, "sub")  # a change of its own in the same directory
    assert commit_holding(fs, held) == 3
    fresh = FS(store)
    assert fresh.listdir(ROOT_ID) == {"f": old, "sub": sub}
    assert cat(fresh, "/f") == b"old, closed"
    assert fs.listdir(ROOT_ID) == {"f": held, "sub": sub}
    fs.write_content(held, [b"new, closed"])
    fs.commit("released")
    fresh = FS(store)
    assert fresh.listdir(ROOT_ID) == {"f": held, "sub": sub}
    assert cat(fresh, "/f") == b"new, closed"
    assert_consistent(store)


def test_a_name_a_held_node_left_keeps_what_took_it(store, fs):
    """A held file's name taken by another node once the file left it (removed, or renamed
    away) commits as the other node: the held entry changes do not come back on top of it
    (found by the differential test: ``open(O_CREAT)``, ``unlink``, ``mkdir`` of the same
    name lost the directory). The test is against a host-free reference: the view itself."""
    d = fs.mkdir(ROOT_ID, "d")
    old = path_file(fs, "/d/replaced", b"old")
    fs.commit("first")
    gone = path_file(fs, "/d/a", b"")
    fs.unlink(d, "a")
    again = fs.mkdir(d, "a")
    moved = path_file(fs, "/d/b", b"")
    fs.rename(d, "b", ROOT_ID, "moved")
    taker = path_file(fs, "/d/b", b"took the name")
    over = path_file(fs, "/d/tmp", b"")
    fs.rename(d, "tmp", d, "replaced")
    fs.rename(d, "replaced", ROOT_ID, "over")
    path_file(fs, "/d/replaced", b"newest")
    expected = fs.listdir(d)
    assert commit_holding(fs, gone, moved, over) == 3
    fresh = FS(store)
    assert fresh.listdir(d) == expected
    assert fresh.stat(again).kind == "directory" and cat(fresh, "/d/b") == b"took the name"
    assert "moved" not in fresh.listdir(ROOT_ID) and "over" not in fresh.listdir(ROOT_ID)
    assert old not in fresh.listdir(d).values()
    assert_consistent(store)
    fs.commit("released")
    fresh = FS(store)
    assert fresh.listdir(d) == expected == fs.listdir(d)
    assert fresh.listdir(ROOT_ID)["moved"] == moved and fresh.listdir(ROOT_ID)["over"] == over
    assert cat(fresh, "/d/b") == b"took the name" and taker in fresh.listdir(d).values()
    assert_consistent(store)


def test_a_held_node_linked_before_release_commits_all_its_names_together(store, fs):
    d = fs.mkdir(ROOT_ID, "d")
    fs.commit("first")
    held = path_file(fs, "/open", b"half")
    fs.link(held, d, "second-name")
    path_file(fs, "/closed", b"closed")
    assert commit_holding(fs, held) == 3
    fresh = FS(store)
    assert sorted(fresh.listdir(ROOT_ID)) == ["closed", "d"] and fresh.listdir(d) == {}
    assert_consistent(store)
    fs.write_content(held, [b"whole"])
    fs.commit("released")
    fresh = FS(store)
    assert fresh.resolve("/open") == fresh.resolve("/d/second-name") == held
    assert fresh.stat(held).nlink == 2 and cat(fresh, "/d/second-name") == b"whole"
    assert_consistent(store)


def test_a_held_node_renamed_over_a_linked_file_keeps_its_names_committed(store, fs):
    d = fs.mkdir(ROOT_ID, "d")
    old = path_file(fs, "/f", b"old")
    fs.link(old, d, "g")
    fs.commit("first")
    held = path_file(fs, "/tmp", b"")
    fs.rename(ROOT_ID, "tmp", ROOT_ID, "f")
    assert commit_holding(fs, held) is None  # the replaced name and its count wait too
    fresh = FS(store)
    assert fresh.resolve("/f") == fresh.resolve("/d/g") == old
    assert fresh.stat(old).nlink == 2
    assert fs.stat(old).nlink == 1  # the view keeps the rename
    fs.write_content(held, [b"new"])
    fs.commit("released")
    fresh = FS(store)
    assert fresh.resolve("/f") == held and fresh.resolve("/d/g") == old
    assert fresh.stat(old).nlink == 1 and cat(fresh, "/d/g") == b"old"
    assert_consistent(store)


def test_a_held_node_removed_before_release_never_shows(store, fs):
    d = fs.mkdir(ROOT_ID, "d")
    fs.commit("first")
    held = path_file(fs, "/d/scratch", b"x")
    fs.unlink(d, "scratch")
    assert commit_holding(fs, held) is None
    assert fs.commit("released") == 3
    assert FS(store).listdir(d) == {}
    assert_consistent(store)


def test_a_failed_store_commit_keeps_the_view_and_the_next_commit_writes_it(store, fs,
                                                                             monkeypatch):
    a = path_file(fs, "/a", b"one")
    assert fs.commit("first") == 2
    fs.write_content(a, [b"two"])
    d = fs.mkdir(ROOT_ID, "d")
    real = store.commit

    def failing(versions, info):
        raise FsError(errno.EIO, "disk on fire")

    monkeypatch.setattr(store, "commit", failing)
    with raises(errno.EIO):
        fs.commit("second")
    # Nothing changed for the view's users, and nothing was committed.
    assert fs.dirty and fs.as_of == 2
    assert cat(fs, "/a") == b"two" and fs.kind(d) == DIRECTORY
    assert FS(store).as_of == 2
    # More changes on top, including to the rows the failed commit held.
    fs.write_content(a, [b"three"])
    path_file(fs, "/d/x", b"ex")
    monkeypatch.setattr(store, "commit", real)
    assert fs.commit("retry") == 3
    fresh = FS(store)
    assert cat(fresh, "/a") == b"three" and cat(fresh, "/d/x") == b"ex"
    assert [v.version for v in fresh.versions(a)] == [1, 2, 3]
    assert_consistent(store)


def test_abort_after_a_failed_commit_drops_its_rows(store, fs, monkeypatch):
    path_file(fs, "/a", b"one")
    assert fs.commit("first") == 2
    fs.write_content(fs.resolve("/a"), [b"two"])
    path_file(fs, "/b", b"bee")
    monkeypatch.setattr(store, "commit", lambda versions, info: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        fs.commit("second")
    fs.abort()
    assert not fs.dirty
    assert cat(fs, "/a") == b"one" and fs.lookup(ROOT_ID, "b") is None
    monkeypatch.undo()
    path_file(fs, "/c", b"sea")
    assert fs.commit("third") == 3
    assert sorted(FS(store).listdir(ROOT_ID)) == ["a", "c"]
    assert_consistent(store)


def test_a_commit_that_landed_before_its_error_is_committed(store, fs, monkeypatch):
    """A store commit that wrote the transaction and then failed (its fsync, say) leaves
    the view committed, and the error raised."""
    path_file(fs, "/a", b"one")
    real = store.commit

    def lands_then_fails(versions, info):
        real(versions, info)
        raise FsError(errno.EIO, "fsync failed")

    monkeypatch.setattr(store, "commit", lands_then_fails)
    with raises(errno.EIO):
        fs.commit("first")
    assert fs.as_of == 2 and not fs.dirty
    monkeypatch.undo()
    path_file(fs, "/b", b"bee")
    assert fs.commit("second") == 3
    assert sorted(FS(store).listdir(ROOT_ID)) == ["a", "b"]
    assert_consistent(store)


def test_store_changes_are_the_rows_of_later_transactions(store, fs):
    a = path_file(fs, "/a", b"one")
    assert fs.commit("first") == 2
    b = path_file(fs, "/b", b"bee")
    fs.write_content(a, [b"two"])
    assert fs.commit("second") == 3
    path_file(fs, "/c")
    assert fs.commit("third") == 4
    rows = store.changes(2, 3)
    assert sorted((v.node_id, v.version, v.txn) for v in rows) == sorted(
        [(ROOT_ID, 3, 3), (a, 2, 3), (b, 1, 3)])
    assert all(v.content is None for v in rows)
    assert {v.txn for v in store.changes(1, 4)} == {2, 3, 4}
    assert store.changes(4, 4) == []
