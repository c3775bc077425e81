"""``pond site build OUT``: the pond's Observable Framework site, built from a read-only mount.

The site project (``site/`` in the repository: package.json, observablehq.config.js, shared
components) holds no pages and no data. Both come from the pond, which the build mounts
read-only as of its newest transaction (``mount.pondfs POND MNT -o ro,at=TXN``) for as long
as ``observable build`` runs:

- ``<pages>/<section>/*.md`` (default ``/site/sites``, ``/site/params``: directories made by
  ``template`` resources) become the site's sections, ``<pages>/index/index.md`` its home
  page; directories with no ``.md`` file (``/site/templates``) are left out;
- each ``--data`` pond path (default ``/reduce``, made by ``temporal-reduce``) appears as
  ``data/<path>``, which is where the pages' ``FileAttachment``\\ s point.

They are symlinks from a source root laid out afresh for each build, beside links to the
project's own files and a copy of the npm cache that ``site/prefill.mjs`` seeded from
``node_modules``. Framework follows the links and copies what the pages use into the
output, so the result is a static folder that needs no network to build or to view (see
``/work/shared/observable-offline.md``). The new site replaces ``OUT`` whole, once built.

With ``from_dir`` the build reads a directory already laid out like a pond (an existing
mount, or a plain copy of the files) and mounts nothing.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .tinyfs import FsError

log = logging.getLogger(__name__)

#: The site project in a source checkout (pondfs is installed editable from it).
DEFAULT_PROJECT = Path(__file__).resolve().parent.parent / "site"
DEFAULT_PAGES = "/site"
DEFAULT_DATA = ("/reduce",)
#: Where prefill.mjs keeps the seeded npm cache; npm ci empties node_modules, and so it.
PREFILLED = Path("node_modules", ".pondfs-npm-cache")
UNMOUNT_TRIES = 20


@dataclass(frozen=True)
class Built:
    """What a build made."""

    output: Path
    pages: int
    seconds: float


def build(output: str | os.PathLike, *, pond: str | None = None, from_dir: str | None = None,
          at: int | str | None = None, pages: str = DEFAULT_PAGES,
          data: Sequence[str] = DEFAULT_DATA, project: str | os.PathLike = DEFAULT_PROJECT,
          title: str | None = None) -> Built:
    """Build the site of ``pond`` (mounted read-only, as of transaction ``at`` if given) or
    of the pond-shaped directory ``from_dir`` into ``output``."""
    if (pond is None) == (from_dir is None):
        raise ValueError("give either pond or from_dir")
    started = time.monotonic()
    project = Path(project).resolve()
    output = Path(output).resolve()
    cache = install(project)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pond-site-") as work:
        if pond is not None:
            source = _mounted(pond, at, Path(work))
        else:
            assert from_dir is not None  # exactly one of them is given (checked above)
            source = _existing(from_dir)
        with source as tree:
            root = _lay_out(Path(work, "src"), project, tree, pages, data, cache)
            staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
            try:
                _observable_build(project, root, staging, title)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the site from a web server
    _replace(staging, output)
    count = sum(1 for _ in output.rglob("*.html"))
    return Built(output, count, time.monotonic() - started)


# ---------------------------------------------------------------------- the project

def install(project: Path) -> Path:
    """``npm ci`` in ``project`` unless node_modules matches the lock file, and the npm
    cache seeded from it; the seeded cache's directory."""
    if not (project / "package-lock.json").is_file():
        raise FsError(errno.ENOENT, f"{project}: not a site project (no package-lock.json)")
    lock = project / "package-lock.json"
    installed = project / "node_modules" / ".package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        _run_node(["npm", "ci", "--no-audit", "--no-fund"], project,
                  "npm ci (installing the site's packages from the npm registry)")
    cache = project / PREFILLED
    stamp = cache / ".stamp"
    if not stamp.is_file() or any(stamp.stat().st_mtime < (project / f).stat().st_mtime
                                  for f in ("prefill.mjs", "node_modules/.package-lock.json")):
        _run_node(["node", "prefill.mjs", str(cache)], project, "seeding the npm cache")
    return cache


def _run_node(command: list[str], cwd: Path, what: str) -> str:
    if shutil.which(command[0]) is None:
        raise FsError(errno.ENOENT, f"{command[0]} is not installed (scripts/setup installs "
                      "Node.js and npm)")
    log.info("%s: %s", what, " ".join(command))
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL,
                          env={**os.environ, "OBSERVABLE_TELEMETRY_DISABLE": "true"})
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise FsError(errno.EIO, f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


# ---------------------------------------------------------------------- the pond

@contextmanager
def _mounted(pond: str, at: int | str | None, work: Path) -> Iterator[Path]:
    """The pond as of transaction ``at`` (default: the newest) mounted read-only at a
    fresh directory under ``work``, unmounted after.

    Always a mount of one transaction (``at=``), never one that follows the pond: pages
    and data then come from the same transaction even if a collector commits during the
    build, and the mount's view never changes under the kernel's caches."""
    if at is None:
        at = _newest_transaction(pond)
    mountpoint = work / "mnt"
    mountpoint.mkdir()
    done = subprocess.run([sys.executable, "-m", "pondfs.mount", pond, str(mountpoint),
                           "-o", f"ro,at={at}"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise FsError(errno.EIO, f"mounting {pond}: {message[0]}")
    try:
        yield mountpoint
    finally:
        _unmount(mountpoint)


def _newest_transaction(location: str) -> int:
    from . import pond as ponds

    with ponds.open_fs(location) as fs:
        return fs.as_of


def _unmount(mountpoint: Path) -> None:
    for _ in range(UNMOUNT_TRIES):
        done = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True,
                              text=True)
        if done.returncode == 0 or not os.path.ismount(mountpoint):
            return
        time.sleep(0.1)  # busy: a process of the build still closing its files
    log.warning("unmounting %s: %s; detaching it lazily", mountpoint, done.stderr.strip())
    subprocess.run(["fusermount3", "-uz", str(mountpoint)], capture_output=True)


@contextmanager
def _existing(directory: str) -> Iterator[Path]:
    path = Path(directory).resolve()
    if not path.is_dir():
        raise FsError(errno.ENOTDIR, f"{directory}: not a directory")
    yield path


# ---------------------------------------------------------------------- the source root

def _lay_out(root: Path, project: Path, tree: Path, pages: str, data: Sequence[str],
             cache: Path) -> Path:
    """The source root: links to the project's files, the pond's pages and data; a copy
    of the seeded npm cache (Framework may add to it, the seed stays as it was)."""
    root.mkdir()
    for entry in sorted((project / "src").iterdir()):
        if entry.name != ".observablehq":
            (root / entry.name).symlink_to(entry)
    shutil.copytree(cache, root / ".observablehq" / "cache", copy_function=_link_or_copy)
    pages_dir = _inside(tree, pages, "pages")
    for section in sorted(pages_dir.iterdir()):
        if not section.is_dir():
            continue
        if section.name == "index":
            home = section / "index.md"
            if home.is_file():
                _link(root / "index.md", home, pages)
        elif any(name.endswith(".md") for name in os.listdir(section)):
            _link(root / section.name, section, pages)
    if not (root / "index.md").exists():
        (root / "index.md").write_text("---\ntitle: Overview\n---\n\n# Overview\n\n"
                                       f"The pond has no home page ({pages}/index/index.md): "
                                       "the pages are in the sidebar.\n")
    for path in data:
        target = _inside(tree, path, "data")
        link = root / "data" / path.strip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        _link(link, target, path)
    return root


def _inside(tree: Path, path: str, what: str) -> Path:
    if not path.startswith("/"):
        raise FsError(errno.EINVAL, f"{what} path {path!r}: must be an absolute pond path")
    found = tree / path.strip("/")
    if not found.is_dir():
        raise FsError(errno.ENOENT, f"{what} path {path}: no such directory in the pond")
    return found


def _link(link: Path, target: Path, what: str) -> None:
    if os.path.lexists(link):
        raise FsError(errno.EEXIST, f"{what}: {link.name} is both in the site project and "
                      "in the pond")
    link.symlink_to(target)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


# ---------------------------------------------------------------------- the build

def _observable_build(project: Path, root: Path, output: Path, title: str | None) -> None:
    env = {"PONDFS_SITE_ROOT": str(root), "PONDFS_SITE_OUTPUT": str(output)}
    if title:
        env["PONDFS_SITE_TITLE"] = title
    observable = project / "node_modules" / "@observablehq" / "framework" / "dist" / "bin" / \
        "observable.js"
    log.info("observable build: %s -> %s", root, output)
    done = subprocess.run(["node", str(observable), "build"], cwd=project,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, "OBSERVABLE_TELEMETRY_DISABLE": "true", **env})
    log.debug("observable build said:\n%s%s", done.stdout, done.stderr)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise FsError(errno.EIO, f"observable build failed (exit {done.returncode}):\n{tail}")


def _replace(new: Path, output: Path) -> None:
    """``new`` at ``output``, replacing what was there in one rename when it can."""
    if output.exists() or output.is_symlink():
        if not output.is_dir() or output.is_symlink():
            raise FsError(errno.ENOTDIR, f"{output}: exists and is not a directory")
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old.", dir=output.parent))
        os.rename(output, old / "site")
        os.rename(new, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, output)
