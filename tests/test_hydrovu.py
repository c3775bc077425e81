"""The HydroVu collector and resources, against the real fake HydroVu server and real ponds.

Most tests collect the demo sample shipped in ``pondfs/demo`` (small and quick); the exact
comparison with the full archives uses ``/work/shared/data/hydrovu`` when it is present.
"""

from __future__ import annotations

import io
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pondfs import cli, collectors, pond, resources
from pondfs.collectors import Progress, RunReport
from pondfs.kinds import KINDS
from pondfs.testing.fake_hydrovu import DEMO_DATA_DIR, FakeHydroVu, archives_in, device_name
from pondfs.tinyfs import DYNAMIC, Checker, FsError, read_all

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA_DIR = Path("/work/shared/data/hydrovu")
Y2K = 946_684_800
DAY = 86_400
# Distinctive values, so a leak anywhere is found by a plain byte search.
CLIENT_ID = "pondfs-test-id-Hq7dV2"
CLIENT_SECRET = "pondfs-test-secret-9xKwZr41Lp"
RESOURCE = "/etc/hydrovu"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HV_ID", CLIENT_ID)
    monkeypatch.setenv("HV_SECRET", CLIENT_SECRET)


@pytest.fixture
def hydrovu() -> Iterator[FakeHydroVu]:
    """The demo sample, one week per data page (about a dozen pages per device)."""
    with FakeHydroVu(DEMO_DATA_DIR, CLIENT_ID, CLIENT_SECRET, page_days=7) as server:
        yield server


@pytest.fixture
def location(tmp_path: Path) -> str:
    """A new pond."""
    path = str(tmp_path / "pond")
    pond.init(path)
    return path


def resource_yaml(base_url: str, **spec: object) -> str:
    """A HydroVu resource document (credentials by reference; fast retries)."""
    import yaml

    spec = {"base_url": base_url, "client_id": "${env:HV_ID}",
            "client_secret": "${env:HV_SECRET}", "limits": {"backoff": 0.01}, **spec}
    return yaml.safe_dump({"apiVersion": "pondfs/v1", "kind": "HydroVu", "name": "hydrovu",
                           "desc": "test devices", "spec": spec}, sort_keys=False)


def apply_text(location: str, text: str, tmp_path: Path, name: str = "hydrovu.yaml"
               ) -> tuple[list[resources.Applied], int | None]:
    path = tmp_path / name
    path.write_text(text)
    loaded = resources.load([str(path)], KINDS)
    with pond.open_fs(location, write=True) as fs:
        applied = resources.apply(fs, loaded)
        return applied, fs.commit("apply")


def collect(location: str, progress: Progress | None = None) -> tuple[RunReport, int | None]:
    with pond.open_fs(location, write=True) as fs:
        report = collectors.run(fs, RESOURCE, progress)
        return report, fs.commit("run")


def setup(location: str, server: FakeHydroVu, tmp_path: Path, **spec: object) -> None:
    apply_text(location, resource_yaml(server.base_url, **spec), tmp_path)


def series_path(server: FakeHydroVu, name: str) -> str:
    (location_id,) = [i for i, n in server.locations.items() if n == name]
    return f"/hydrovu/devices/{location_id}/{name}.series"


def stored(location: str, server: FakeHydroVu) -> dict[str, dict[str, list]]:
    """Each device's series as columns (only devices that have one)."""
    found = {}
    with pond.open_fs(location) as fs:
        for name in server.locations.values():
            try:
                node_id = fs.resolve(series_path(server, name))
            except FsError:
                continue
            found[name] = fs.read_series(node_id).to_pydict()
    return found


def expected(data_dir: Path, name: str, low: int = Y2K, high: int | None = None
             ) -> dict[str, list]:
    """What HydroVu holds for a device in [low, high], as the collector should store it:
    rows with some reading, columns with some value, NaN as no reading."""
    (path,) = [p for p in archives_in(data_dir) if device_name(p) == name]
    table = pq.read_table(path).to_pydict()
    times = table.pop("timestamp")
    columns = {c: [None if v is None or math.isnan(v) else v for v in values]
               for c, values in table.items()}
    keep = [i for i, t in enumerate(times)
            if t >= low and (high is None or t <= high)
            and any(values[i] is not None for values in columns.values())]
    order = sorted(keep, key=lambda i: times[i])
    result = {"timestamp": [times[i] for i in order]}
    for column, values in sorted(columns.items()):
        kept = [values[i] for i in order]
        if any(v is not None for v in kept):
            result[column] = kept
    return result


def assert_complete(location: str, server: FakeHydroVu, data_dir: Path = DEMO_DATA_DIR,
                    high: int | None = None) -> None:
    """Every device holds exactly what the archives have up to ``high``: nothing duplicated,
    nothing missing."""
    got = stored(location, server)
    assert sorted(got) == sorted(server.locations.values())
    for name, columns in got.items():
        assert columns == expected(data_dir, name, high=high), name
    with pond.open_fs(location) as fs:
        assert Checker(fs).run().ok


class OnPage(Progress):
    """Calls ``action`` once, right after ``device`` delivered page ``page`` and the server
    answered the request for the page after it (the collector asks for the next page while
    it keeps this one), so a fault injected by ``action`` hits page ``page + 2``."""

    def __init__(self, server: FakeHydroVu, device: str, page: int,
                 action: Callable[[], object]):
        self.server, self.device, self.page, self.action = server, device, page, action
        self.fired = False

    def update(self, source: str, pages: int, rows: int) -> None:
        if source == self.device and pages == self.page and not self.fired:
            self.fired = True
            path = data_prefix(self.server, self.device)
            deadline = time.monotonic() + 10
            while sum(r.path == path for r in self.server.requests) <= self.page:
                assert time.monotonic() < deadline, "the next page was never asked for"
                time.sleep(0.01)
            self.action()


def data_prefix(server: FakeHydroVu, name: str) -> str:
    (location_id,) = [i for i, n in server.locations.items() if n == name]
    return f"/v1/locations/{location_id}/data"


# -- collection --------------------------------------------------------------------------------


def test_full_collection_matches_the_archives(location: str, tmp_path: Path) -> None:
    data_dir = SHARED_DATA_DIR if SHARED_DATA_DIR.is_dir() else DEMO_DATA_DIR
    with FakeHydroVu(data_dir, CLIENT_ID, CLIENT_SECRET, page_days=14) as server:
        setup(location, server, tmp_path)
        report, txn = collect(location, None)
        assert txn is not None and not report.failures
        assert_complete(location, server, data_dir)
        got = stored(location, server)
    # Clock-glitch rows are gone; the all-null Pulse.Hz of Vulink_2 never appears.
    assert all(min(columns["timestamp"]) >= Y2K for columns in got.values())
    assert "Pulse.Hz" not in got["NoyoCenterVulink_2"]
    # Parameters that come and go leave nulls between values.
    assert any(None in values[values.index(next(v for v in values if v is not None)):]
               for columns in got.values() for name, values in columns.items()
               if name != "timestamp")
    assert report.rows == sum(len(c["timestamp"]) for c in got.values())
    with pond.open_fs(location) as fs:
        for name in server.locations.values():
            versions = fs.versions(fs.resolve(series_path(server, name)))
            assert len(versions) == 1  # one version per device per run


def test_a_run_with_nothing_new_is_no_transaction(location: str, hydrovu: FakeHydroVu,
                                                  tmp_path: Path) -> None:
    setup(location, hydrovu, tmp_path)
    assert collect(location)[1] is not None
    with pond.open_fs(location) as fs:
        before = len(fs.transactions())
    hydrovu.clear_requests()
    report, txn = collect(location)
    assert txn is None and report.rows == 0 and not report.failures
    with pond.open_fs(location) as fs:
        assert len(fs.transactions()) == before
    # Each device asked once, from just after its newest stored reading.
    data = [r for r in hydrovu.requests if "/data" in r.path]
    assert len(data) == 4 and all(r.status == 404 for r in data)


def test_after_time_advances_a_run_appends_exactly_the_new_rows(
        location: str, hydrovu: FakeHydroVu, tmp_path: Path) -> None:
    cut = hydrovu.last_timestamp - 7 * DAY
    hydrovu.set_now(cut)
    setup(location, hydrovu, tmp_path)
    first, _ = collect(location)
    assert_complete(location, hydrovu, high=cut)
    hydrovu.advance(7 * DAY)
    second, txn = collect(location)
    assert txn is not None and not second.failures
    assert_complete(location, hydrovu)
    assert 0 < second.rows < first.rows
    with pond.open_fs(location) as fs:
        for source in second.sources:
            versions = fs.versions(fs.resolve(series_path(hydrovu, source.name)))
            if source.rows:
                assert len(versions) == 2 and versions[1].min_time > versions[0].max_time
                assert versions[1].min_time > cut
            else:
                assert len(versions) == 1


def test_the_points_limit_spreads_a_crawl_over_runs(location: str, hydrovu: FakeHydroVu,
                                                    tmp_path: Path) -> None:
    setup(location, hydrovu, tmp_path, limits={"backoff": 0.01, "max_pages": 4})
    runs = 0
    while True:
        report, txn = collect(location)
        runs += 1
        assert not report.failures
        if txn is None:
            break
        assert all(s.pages <= 4 for s in report.sources)
    assert runs > 3
    assert_complete(location, hydrovu)


def test_a_renamed_device_keeps_its_series(location: str, hydrovu: FakeHydroVu,
                                           tmp_path: Path) -> None:
    (vulink,) = [i for i, n in hydrovu.locations.items() if n == "NoyoCenterVulink_2"]
    hydrovu.set_now(expected(DEMO_DATA_DIR, "NoyoCenterVulink_2")["timestamp"][-1] - 30 * DAY)
    setup(location, hydrovu, tmp_path, devices=[{"id": vulink, "name": "harbor"}])
    collect(location)
    hydrovu.set_now(hydrovu.last_timestamp)
    setup(location, hydrovu, tmp_path, devices=[{"id": vulink, "name": "harbor-2"}])
    report, _ = collect(location)
    assert report.rows > 0
    with pond.open_fs(location) as fs:
        folder = fs.resolve(f"/hydrovu/devices/{vulink}")
        assert list(fs.listdir(folder)) == ["harbor-2.series"]
        columns = fs.read_series(fs.lookup(folder, "harbor-2.series")).to_pydict()
    assert columns == expected(DEMO_DATA_DIR, "NoyoCenterVulink_2")


def test_inactive_and_unknown_devices(location: str, hydrovu: FakeHydroVu,
                                      tmp_path: Path) -> None:
    ids = {n: i for i, n in hydrovu.locations.items()}
    devices = [{"id": ids["NoyoCenterAT500_1"], "active": False, "comment": "retired"},
               {"id": ids["NoyoCenterVulink_2"]},
               {"id": 1234567890123456, "name": "ghost"}]
    setup(location, hydrovu, tmp_path, devices=devices)
    report, txn = collect(location)
    assert txn is not None
    assert [s.name for s in report.sources] == ["NoyoCenterVulink_2", "ghost"]
    assert report.failures == [f"{RESOURCE}: device ghost (location 1234567890123456): not "
                               "among the account's locations"]
    assert list(stored(location, hydrovu)) == ["NoyoCenterVulink_2"]


# -- faults ------------------------------------------------------------------------------------


def test_rate_limit_waits_for_retry_after(location: str, hydrovu: FakeHydroVu,
                                          tmp_path: Path) -> None:
    setup(location, hydrovu, tmp_path)
    hydrovu.inject_rate_limit(count=2, retry_after=1)
    started = time.monotonic()
    report, _ = collect(location)
    assert time.monotonic() - started >= 2.0  # backoff alone would be 0.03 s
    assert hydrovu.faults_fired["rate_limit"] == 2 and not report.failures
    assert_complete(location, hydrovu)


def test_server_errors_within_the_retry_bound_are_survived(
        location: str, hydrovu: FakeHydroVu, tmp_path: Path) -> None:
    setup(location, hydrovu, tmp_path, limits={"backoff": 0.01, "retries": 3})
    hydrovu.inject_server_error(count=3, status=503)
    progress = OnPage(hydrovu, "NoyoCenterAT500_2", 2,
                      lambda: hydrovu.inject_server_error(count=3, status=500))
    report, _ = collect(location, progress)
    assert hydrovu.faults_fired["server_error"] == 6 and not report.failures
    assert_complete(location, hydrovu)


def test_server_errors_beyond_the_bound_fail_that_device_only(
        location: str, hydrovu: FakeHydroVu, tmp_path: Path) -> None:
    setup(location, hydrovu, tmp_path, limits={"backoff": 0.01, "retries": 2})
    device = "NoyoCenterAT500_2"
    progress = OnPage(hydrovu, device, 3, lambda: hydrovu.inject_server_error(
        count=3, path_prefix=data_prefix(hydrovu, device)))
    report, txn = collect(location, progress)
    (failure,) = report.failures
    assert f"device {device} (location" in failure
    assert "page 5 (startTime=946684800): HTTP 500 Internal Server Error; gave up after 3 " \
        "tries" in failure
    assert txn is not None  # the other devices, and this one's first four pages
    (source,) = [s for s in report.sources if s.name == device]
    assert source.pages == 4 and source.rows > 0
    with pond.open_fs(location) as fs:
        kept = fs.read_series(fs.resolve(series_path(hydrovu, device))).to_pydict()
    assert kept == expected(DEMO_DATA_DIR, device, high=source.last)
    # The next run resumes after the last kept page: nothing twice, nothing missing.
    report, _ = collect(location)
    assert not report.failures and [s.name for s in report.sources if s.rows] == [device]
    assert_complete(location, hydrovu)


def test_a_slow_answer_times_out_and_is_retried(location: str, hydrovu: FakeHydroVu,
                                                tmp_path: Path) -> None:
    setup(location, hydrovu, tmp_path, limits={"backoff": 0.01, "timeout": 0.5})
    hydrovu.inject_delay(3, count=1, path_prefix="/v1/locations/")
    report, _ = collect(location)
    assert hydrovu.faults_fired["delay"] == 1 and not report.failures
    assert_complete(location, hydrovu)


def test_slow_answers_beyond_the_bound_are_reported(location: str, hydrovu: FakeHydroVu,
                                                    tmp_path: Path) -> None:
    setup(location, hydrovu, tmp_path, limits={"backoff": 0.01, "timeout": 0.3, "retries": 1})
    hydrovu.inject_delay(2, count=2, path_prefix="/v1/sispec/")
    report, txn = collect(location)
    assert txn is None
    assert report.failures == [f"{RESOURCE}: friendly names: no answer within 0.3 s; gave up "
                               "after 2 tries"]


def test_an_expired_token_is_renewed_once(location: str, hydrovu: FakeHydroVu,
                                          tmp_path: Path) -> None:
    setup(location, hydrovu, tmp_path)
    report, _ = collect(location, OnPage(hydrovu, "NoyoCenterAT500_1", 2, hydrovu.expire_tokens))
    assert hydrovu.faults_fired["expired_token"] == 1 and not report.failures
    tokens = [r for r in hydrovu.requests if r.path == "/oauth/token"]
    assert len(tokens) == 2
    assert_complete(location, hydrovu)


def test_bad_credentials_fail_the_run_and_write_nothing(
        location: str, hydrovu: FakeHydroVu, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    setup(location, hydrovu, tmp_path)
    monkeypatch.setenv("HV_SECRET", "not-the-secret")
    report, txn = collect(location)
    assert txn is None
    assert report.failures == [f"{RESOURCE}: HydroVu refused the client credentials "
                               "(HTTP 401: Bad client credentials)"]


def test_malformed_json_names_the_device_and_page(location: str, hydrovu: FakeHydroVu,
                                                  tmp_path: Path) -> None:
    setup(location, hydrovu, tmp_path)
    device = "NoyoCenterVulink_1"
    report, _ = collect(location, OnPage(hydrovu, device, 2, hydrovu.inject_malformed_json))
    (failure,) = report.failures
    assert failure.startswith(f"{RESOURCE}: device {device} (location ")
    assert "page 4 (startTime=946684800): malformed JSON" in failure
    (source,) = [s for s in report.sources if s.name == device]
    assert source.pages == 3
    report, _ = collect(location)
    assert not report.failures
    assert_complete(location, hydrovu)


def test_legacy_empty_answer_means_nothing_new(location: str, hydrovu: FakeHydroVu,
                                               tmp_path: Path) -> None:
    hydrovu.set_now(hydrovu.last_timestamp - 3 * DAY)
    hydrovu.set_legacy_empty_results(True)
    setup(location, hydrovu, tmp_path)
    collect(location)
    report, txn = collect(location)
    assert txn is None and not report.failures
    assert hydrovu.faults_fired["legacy_empty_results"] >= 4
    hydrovu.advance(3 * DAY)
    report, txn = collect(location)
    assert txn is not None and not report.failures
    assert_complete(location, hydrovu)


# -- resources ---------------------------------------------------------------------------------


def test_apply_creates_a_dynamic_node_that_reads_as_its_config(
        location: str, hydrovu: FakeHydroVu, tmp_path: Path) -> None:
    applied, txn = apply_text(location, resource_yaml(hydrovu.base_url), tmp_path)
    assert txn is not None
    (created,) = applied
    assert (created.action, created.resource.path) == ("created", RESOURCE)
    with pond.open_fs(location) as fs:
        node_id = fs.resolve(RESOURCE)
        assert node_id == created.node_id and fs.get(node_id).kind == DYNAMIC
        text = read_all(fs, node_id).decode()
        assert fs.stat(node_id).mode & 0o222 == 0
        with pytest.raises(FsError):
            fs.write_content(node_id, [b"x"])
    assert "client_secret: ${env:HV_SECRET}" in text
    assert CLIENT_SECRET not in text


def test_reapplying_is_no_transaction_and_changes_update_in_place(
        location: str, hydrovu: FakeHydroVu, tmp_path: Path) -> None:
    text = resource_yaml(hydrovu.base_url)
    (first,), _ = apply_text(location, text, tmp_path)
    (again,), txn = apply_text(location, "# a comment\n" + text, tmp_path)
    assert again.action == "unchanged" and txn is None
    (changed,), txn = apply_text(location, resource_yaml(hydrovu.base_url, output="/data"),
                                 tmp_path)
    assert changed.action == "updated" and changed.node_id == first.node_id and txn is not None
    with pond.open_fs(location) as fs:
        assert fs.get(first.node_id).version == 2
        assert "output: /data" in fs.dynamic_config(first.node_id)[1].decode()


def bad(document: str) -> str:
    return f"apiVersion: pondfs/v1\nkind: HydroVu\nname: hv\n{document}"


SPEC = "spec:\n  client_id: ${env:A}\n  client_secret: ${env:B}\n"


@pytest.mark.parametrize("document, message", [
    (bad("spec:\n  client_id: ${env:A}\n  client_secret: hunter2\n"),
     "document 2 (HydroVu hv): spec.client_secret: must be a reference like ${env:NAME}"),
    (bad(SPEC + "  devices:\n    - {id: abc}\n"),
     "document 2 (HydroVu hv): spec.devices[0].id: must be an integer, not a string"),
    (bad(SPEC + "  limits: {retries: -1}\n"),
     "document 2 (HydroVu hv): spec.limits.retries: must be at least 0, not -1"),
    (bad(SPEC + "  devise: []\n"), "document 2 (HydroVu hv): spec.devise: unknown field"),
    (bad(SPEC + "  floor: yesterday\n"),
     "document 2 (HydroVu hv): spec.floor: must be epoch seconds or an ISO date"),
    (bad("desc: no spec\n"), "document 2: spec: missing"),
    (bad("spec: [1]\n"), "document 2: spec: must be a mapping, not a list"),
    ("apiVersion: pondfs/v1\nkind: Nope\nname: x\nspec: {}\n",
     "document 2: kind: unknown kind 'Nope' (known: HydroVu, "),
    ("apiVersion: v2\nkind: HydroVu\nname: x\nspec: {}\n",
     "document 2: apiVersion: must be pondfs/v1, not 'v2'"),
    ("apiVersion: pondfs/v1\nkind: HydroVu\nname: 7 7\nspec: {}\n",
     "document 2: name: '7 7' is not a name"),
    (bad("path: relative/x\n" + SPEC), "document 2: path: must be an absolute pond path"),
])
def test_apply_validation_names_file_document_and_field(
        location: str, hydrovu: FakeHydroVu, tmp_path: Path, document: str, message: str,
        capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "two.yaml"
    good = resource_yaml(hydrovu.base_url).replace("name: hydrovu", "name: fine")
    path.write_text(good + "---\n" + document)
    rc, out, err = pond_here(capsys, location, "apply", "-f", str(path))
    assert (rc, out) == (1, "")
    assert err.startswith(f"pond apply: {path}: {message}"), err
    assert err.count("\n") == 1
    with pond.open_fs(location) as fs:
        assert len(fs.transactions()) == 1  # only init: nothing was written


def test_apply_refuses_a_path_held_by_something_else(location: str, hydrovu: FakeHydroVu,
                                                     tmp_path: Path) -> None:
    with pond.open_fs(location, write=True) as fs:
        etc = fs.mkdir(fs.resolve("/"), "etc")
        fs.mkdir(etc, "hydrovu")
        fs.commit("mkdir")
    with pytest.raises(FsError, match="document 1: path: /etc/hydrovu exists and is not a "
                       "resource"):
        apply_text(location, resource_yaml(hydrovu.base_url), tmp_path)


# -- the pond command --------------------------------------------------------------------------


def pond_here(capsys: pytest.CaptureFixture, location: str, *args: str) -> tuple[int, str, str]:
    """``pond ARGS`` run in this process: exit status, stdout, stderr."""
    capsys.readouterr()
    rc = cli.run(["--pond", location, *args])
    out, err = capsys.readouterr()
    return rc, out, err



def pond_cli(location: str, *args: str, env: dict | None = None
             ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pondfs.cli", "--pond", location, *args],
                          capture_output=True, text=True, env=env, cwd=REPO)


def test_cli_apply_run_describe_and_secrets(location: str, hydrovu: FakeHydroVu,
                                            tmp_path: Path) -> None:
    config = tmp_path / "hydrovu.yaml"
    config.write_text(resource_yaml(hydrovu.base_url))
    outputs = []

    def run(*args: str, env: dict | None = None, rc: int = 0) -> subprocess.CompletedProcess:
        result = pond_cli(location, *args, env=env)
        assert result.returncode == rc, result.stderr
        outputs.append(result)
        return result

    created = run("apply", "-f", str(config))
    assert created.stdout.startswith(f"created   {RESOURCE} (HydroVu, node ")
    assert run("apply", "-f", str(config)).stdout.endswith("nothing changed: no transaction\n")
    described = run("describe", RESOURCE).stdout
    assert "kind: HydroVu\n" in described and "client_id: ${env:HV_ID}" in described
    assert "desc: test devices" in described

    hydrovu.set_now(hydrovu.last_timestamp - 2 * DAY)
    first = run("-v", "run", RESOURCE)  # debug logging on: still no secret
    assert first.stdout.startswith(f"{RESOURCE}: 4 devices, ") and first.stderr.strip() != ""
    quiet = run("run", "--all")
    assert quiet.stdout == f"{RESOURCE}: 4 devices, 0 with new data, 0 rows in 0 pages, " + \
        quiet.stdout.split(" pages, ")[1]
    assert re.search(r"nothing new: the run is recorded in transaction \d+\n$", quiet.stdout)
    assert quiet.stderr == ""  # not a terminal: no progress
    hydrovu.advance(2 * DAY)
    assert run("run", "-q", "--all").stdout == ""
    assert_complete(location, hydrovu)

    hydrovu.inject_server_error(count=10)
    failed = run("run", RESOURCE, rc=1)
    assert failed.stderr.count("\n") == 1
    assert failed.stderr.startswith(f"pond run: {RESOURCE}: friendly names: HTTP 500")
    wrong = dict(os.environ, HV_SECRET="wrong-" + CLIENT_SECRET[::-1])
    run("run", RESOURCE, env=wrong, rc=1)
    unset = {k: v for k, v in os.environ.items() if k != "HV_SECRET"}
    missing = run("run", RESOURCE, env=unset, rc=1)
    assert missing.stderr == (f"pond run: {RESOURCE}: spec.client_secret: environment "
                              "variable HV_SECRET is not set\n")
    run("cat", RESOURCE)
    run("ls", "-l", "/hydrovu/devices")

    for result in outputs:
        for secret in (CLIENT_ID, CLIENT_SECRET):
            assert secret not in result.stdout and secret not in result.stderr
    for path in Path(location).rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert CLIENT_ID.encode() not in content and CLIENT_SECRET.encode() not in content


@pytest.mark.parametrize("missing", ["client_id", "client_secret"])
def test_cli_apply_without_a_credential_is_one_line(location: str, tmp_path: Path,
                                                     missing: str) -> None:
    import yaml

    document = yaml.safe_load(resource_yaml("http://127.0.0.1:9"))
    del document["spec"][missing]
    config = tmp_path / "hydrovu.yaml"
    config.write_text(yaml.safe_dump(document))

    def files() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in Path(location).rglob("*") if p.is_file()}

    before = files()
    done = pond_cli(location, "apply", "-f", str(config))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"pond apply: {config}: document 1 (HydroVu hydrovu): "
                           f"spec.{missing}: missing\n")
    assert files() == before


def test_cli_mknod_and_run_errors(location: str, hydrovu: FakeHydroVu, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"base_url: {hydrovu.base_url}\nclient_id: ${{env:HV_ID}}\n"
                    "client_secret: ${env:HV_SECRET}\noutput: /sites/noyo\n")
    rc, out, _ = pond_here(capsys, location, "mknod", "HydroVu", "/collectors/noyo", "--config",
                           str(spec))
    assert rc == 0 and out.startswith("created /collectors/noyo (HydroVu, node ")
    rc, out, err = pond_here(capsys, location, "run", "--all")
    assert rc == 0 and out.startswith("/collectors/noyo: 4 devices, 4 with new data"), err
    rc, out, _ = pond_here(capsys, location, "ls", "/sites/noyo/devices")
    assert len(out.split()) == 4
    rc, _, err = pond_here(capsys, location, "run", "/sites")
    assert (rc, err) == (1, "pond run: /sites is not a collector (see pond describe /sites)\n")
    rc, _, err = pond_here(capsys, location, "run")
    assert (rc, err) == (1, "pond run: give a collector's PATH or --all\n")
    spec.write_text("client_id: plain\n")
    rc, _, err = pond_here(capsys, location, "mknod", "HydroVu", "/x", "--config", str(spec))
    assert rc == 1
    assert err.startswith(f"pond mknod: {spec}: spec.client_id: must be a reference")


def test_progress_shows_on_a_terminal_only(location: str, hydrovu: FakeHydroVu,
                                           tmp_path: Path, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    setup(location, hydrovu, tmp_path)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.run(["--pond", location, "run", RESOURCE]) == 0
    shown = terminal.getvalue()
    assert f"{RESOURCE}: device 4 NoyoCenterVulink_2: page " in shown and " rows/s" in shown
    assert shown.endswith("\r\033[K")  # the status line is cleared at the end
    assert capsys.readouterr().out.startswith(f"{RESOURCE}: 4 devices, 4 with new data")
