"""The Observable Framework site, end to end: the fake HydroVu server, ``pond run``, the
reduce and template resources of ``site/pond-site.yaml``, ``pond site build`` from a
read-only mount (with no network at all where the machine lets a test take it away), the
built folder served on 127.0.0.1 and viewed in headless Chromium (``site/check-pages.mjs``).

Expected values come from the collected series (their columns) and the demo archives,
never from the site's code. Screenshots go to ``artifacts/site/`` (or ``$PONDFS_ARTIFACTS/site``).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pondfs import site
from pondfs.testing.fake_hydrovu import DEMO_DATA_DIR, FakeHydroVu

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "site"
POND_CMD = [sys.executable, "-m", "pondfs.cli"]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("PONDFS_ARTIFACTS", REPO / "artifacts")) / "site"
CLIENT_ID, CLIENT_SECRET = "site-test-id", "site-test-secret-Zq81"
DAY = 86_400
#: The window picker's rule: a window of at most this many days loads this resolution.
RULE = ((30, "1h"), (60, "2h"), (90, "4h"), (180, "12h"), (float("inf"), "24h"))

pytestmark = pytest.mark.skipif(shutil.which("node") is None,
                                reason="needs Node.js and npm (scripts/setup)")


def end_to_end(test):
    """A test of the whole story: slow, mounts, views pages in Chromium."""
    for mark in (pytest.mark.slow, pytest.mark.fuse,
                 pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason="needs Debian's chromium (scripts/setup)")):
        test = mark(test)
    return test


def pond_cmd(location: Path, *args: str) -> str:
    env = {**os.environ, "POND": str(location), "HV_ID": CLIENT_ID, "HV_SECRET": CLIENT_SECRET}
    done = subprocess.run([*POND_CMD, *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, cwd=REPO)
    assert done.returncode == 0, f"pond {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def collected(location: Path) -> dict[str, list[str]]:
    """Each collected device's parameter columns (<Param>.<Unit>), read from its series as
    ``pond cat`` gives it (a device reports a parameter only once it has readings)."""
    found = {}
    for path in pond_cmd(location, "ls", "/hydrovu/devices/*/*.series").split():
        data = subprocess.run([*POND_CMD, "--pond", str(location), "cat", path],
                              capture_output=True, check=True).stdout
        names = pq.read_schema(pa.BufferReader(data)).names
        found[path.rsplit("/", 1)[1].removesuffix(".series")] = [
            c for c in names if c != "timestamp"]
    return found


def offline() -> list[str]:
    """A command prefix that runs without any network (a new network namespace), or [] where
    this machine does not allow one."""
    try:
        done = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    except FileNotFoundError:
        return []
    return ["unshare", "-n"] if done.returncode == 0 else []


def build_site(location: Path, out: Path) -> str:
    """``pond site build OUT`` with no network; what it printed."""
    env = {**os.environ, "POND": str(location)}
    done = subprocess.run([*offline(), *POND_CMD, "site", "build", str(out)], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class _Handler(SimpleHTTPRequestHandler):
    """Serves Framework's extension-less links (/sites/x -> /sites/x.html)."""

    def translate_path(self, path: str) -> str:
        local = super().translate_path(path)
        if not os.path.exists(local) and os.path.exists(local + ".html"):
            return local + ".html"
        return local

    def log_message(self, *args: object) -> None:
        pass


class Server:
    """A directory served on 127.0.0.1 from a thread."""

    def __init__(self, directory: Path):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                         functools.partial(_Handler, directory=str(directory)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def view(directory: Path, pages: dict[str, int], windows: dict[str, str] | None = None,
         shots: str = "") -> dict[str, dict]:
    """Load ``pages`` (path -> number of charts) of the built site in Chromium; the
    report of each (see site/check-pages.mjs), screenshots under ARTIFACTS/shots."""
    windows = windows or {}
    shutil.rmtree(ARTIFACTS / shots, ignore_errors=True)
    specs = [f"{path}={charts}" + (f"@{windows[path]}" if path in windows else "")
             for path, charts in pages.items()]
    server = Server(directory)
    try:
        done = subprocess.run(["node", "check-pages.mjs", server.url,
                               str(ARTIFACTS / shots), *specs], cwd=PROJECT,
                              capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL)
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {r["path"]: r for r in reports}


def shown(report: dict) -> tuple[datetime, datetime, str]:
    """The window and resolution a page says it shows."""
    m = re.match(r"(\S+ \S+) – (\S+ \S+) UTC · resolution (\S+) ·", report["window"])
    assert m, report["window"]
    start, end = (datetime.strptime(t, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
                  for t in m.group(1, 2))
    return start, end, m.group(3)


def rule(days: float) -> str:
    return next(res for limit, res in RULE if days <= limit)


def newest_reading(device: str) -> int:
    return max(pq.read_table(DEMO_DATA_DIR / f"{device}.parquet", columns=["timestamp"])
               .column(0).to_pylist())


@pytest.fixture(scope="module")
def hydrovu() -> Iterator[FakeHydroVu]:
    """The fake HydroVu, its clock a week before the demo's last reading."""
    with FakeHydroVu(DEMO_DATA_DIR, CLIENT_ID, CLIENT_SECRET, page_days=7) as server:
        server.set_now(server.last_timestamp - 7 * DAY)
        yield server


@pytest.fixture(scope="module")
def demo(hydrovu: FakeHydroVu, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A pond collected from the fake HydroVu with the site's resources applied, its site
    built once from a mount, and the first views of it."""
    site.install(PROJECT)  # npm ci if needed: the build itself runs without network
    work = tmp_path_factory.mktemp("site")
    location = work / "pond"
    (work / "hydrovu.yaml").write_text(
        "apiVersion: pondfs/v1\nkind: HydroVu\nname: hydrovu\nspec:\n"
        f"  base_url: {hydrovu.base_url}\n  client_id: ${{env:HV_ID}}\n"
        "  client_secret: ${env:HV_SECRET}\n")
    pond_cmd(location, "init")
    pond_cmd(location, "apply", "-f", str(work / "hydrovu.yaml"))
    pond_cmd(location, "run", "/etc/hydrovu", "-q")
    pond_cmd(location, "mkdir", "-p", "/site/templates")
    pond_cmd(location, "cp", *map(str, sorted((PROJECT / "templates").glob("*.md.j2"))),
             "/site/templates/")
    pond_cmd(location, "apply", "-f", str(PROJECT / "pond-site.yaml"))
    out = work / "out"
    printed = build_site(location, out)
    devices = collected(location)
    # The device read until the end, and one that stopped reading long ago.
    first = max(devices, key=newest_reading)
    second = min(devices, key=newest_reading)
    pages = {"/": 0, f"/sites/{first}": len(devices[first]),
             f"/sites/{second}": len(devices[second]), "/params/temperature-c": 1}
    reports = view(out, pages, {f"/sites/{first}": "7 days", "/params/temperature-c": "30 days"},
                   "first")
    return {"location": location, "out": out, "printed": printed, "devices": devices,
            "reports": reports, "work": work}


@end_to_end
def test_the_build_makes_every_page_and_needs_no_network(demo: dict) -> None:
    out: Path = demo["out"]
    devices = demo["devices"]
    parameters = {c for cols in devices.values() for c in cols}
    assert sorted(p.stem for p in (out / "sites").glob("*.html")) == sorted(devices)
    assert len(list((out / "params").glob("*.html"))) == len(parameters)
    assert (out / "index.html").is_file()
    assert f"built {1 + len(devices) + len(parameters)} pages into {out}" in demo["printed"]
    assert oct(out.stat().st_mode & 0o777) == "0o755"
    # Every page's data and code is in the folder: no address off the site but XML's.
    text = "\n".join(p.read_text(errors="replace") for p in out.rglob("*")
                     if p.suffix in (".html", ".js", ".css"))
    assert set(re.findall(r"https?://[\w.-]+", text)) <= {"http://www.w3.org"}
    # The mount is gone.
    assert "pond-site-" not in Path("/proc/mounts").read_text()


@end_to_end
def test_each_chart_has_a_band_and_a_line_per_instrument(demo: dict) -> None:
    devices = demo["devices"]
    for path, report in demo["reports"].items():
        assert report["status"] == 200, path
        assert report["errors"] == [] and report["external"] == [], (path, report)
        if path.startswith("/sites/"):
            device = path.rsplit("/", 1)[1]
            assert report["title"].startswith(device)
            units = [c.split(".", 1)[1] for c in devices[device]]
            charts = report["charts"]
            assert len(charts) == len(devices[device])
            for chart, unit in zip(charts, units, strict=True):
                assert (chart["lines"], chart["areas"]) == (1, 1), chart
                assert chart["points"] > 10, chart
                assert chart["ylabel"].endswith(f"({unit})"), chart
        elif path.startswith("/params/"):
            measuring = [d for d, cols in devices.items() if "Temperature.C" in cols]
            (chart,) = report["charts"]
            assert (chart["lines"], chart["areas"]) == (len(measuring), len(measuring))
            assert chart["ylabel"] == "↑ Temperature (C)"
        else:
            assert report["charts"] == [] and report["title"].startswith("Overview")
    assert (ARTIFACTS / "first" / "params_temperature-c.png").stat().st_size > 10_000


@end_to_end
def test_the_window_picks_the_resolution(demo: dict) -> None:
    for path, report in demo["reports"].items():
        if path == "/":
            continue
        start, end, resolution = shown(report)
        assert resolution == rule((end - start).total_seconds() / DAY), report["window"]
        if "after" in report:
            start, end, resolution = shown(report["after"])
            days = (end - start).total_seconds() / DAY
            assert resolution == rule(days) and days in (7, 30), report["after"]["window"]
            # Only that resolution's files were fetched for the new window.
            assert report["after"]["files"], report["after"]
            assert all(f"/res={resolution}." in f for f in report["after"]["files"])
            assert all(c["lines"] >= 1 for c in report["after"]["charts"])


@end_to_end
def test_new_readings_appear_on_the_next_build(demo: dict, hydrovu: FakeHydroVu) -> None:
    device = max(demo["devices"], key=newest_reading)
    _, before, _ = shown(demo["reports"][f"/sites/{device}"])
    old_files = {p.name for p in (demo["out"] / "_file").rglob("*.parquet")}
    hydrovu.advance(7 * DAY)
    pond_cmd(demo["location"], "run", "/etc/hydrovu", "-q")
    build_site(demo["location"], demo["out"])
    devices = collected(demo["location"])
    report = view(demo["out"], {f"/sites/{device}": len(devices[device])}, shots="second")[
        f"/sites/{device}"]
    assert report["errors"] == [] and report["external"] == []
    _, after, _ = shown(report)
    newest = newest_reading(device)
    # The window ends where the day bucket of the newest reading ends: a week later.
    assert after == datetime.fromtimestamp(newest - newest % DAY + DAY, UTC)
    assert (after - before).days == 7
    # The output was replaced whole: as many data files as before, with new content.
    new_files = {p.name for p in (demo["out"] / "_file").rglob("*.parquet")}
    assert len(new_files) == len(old_files) and new_files != old_files


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "{tmp}"], "pages path /site: no such directory in the pond"),
    (["--from", "{tmp}/nope"], "{tmp}/nope: not a directory"),
    (["--from", "{tmp}", "--at", "3"], "--at reads the pond as of a transaction: not with"),
    (["--pond", "{tmp}/nopond"], "{tmp}/nopond: no such pond"),
])
def test_build_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    site.install(PROJECT)
    argv = [a.format(tmp=tmp_path) for a in args]
    before, after = (argv[:2], argv[2:]) if argv[0] == "--pond" else ([], argv)
    done = subprocess.run([*POND_CMD, *before, "site", "build", str(tmp_path / "out"),
                           *after], capture_output=True, text=True, cwd=REPO,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stderr.startswith(f"pond site: {message.format(tmp=tmp_path)}")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
