"""Operating a pond: run records, pond status, pipelines, declared backups, schedules.

Against the real fake HydroVu server, real ponds and the loopback S3 server; the numbers
pond status reports are compared with ones computed independently (pyarrow over ``pond
cat``'s output and over the Delta table's files).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest
import yaml
from deltalake import DeltaTable

from pondfs import cli, pond, schedule
from pondfs.testing.fake_hydrovu import DEMO_DATA_DIR, FakeHydroVu

REPO = Path(__file__).resolve().parent.parent
CLIENT_ID = "status-test-id"
CLIENT_SECRET = "status-test-secret"
COLLECTOR = "/etc/hydrovu"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HV_ID", CLIENT_ID)
    monkeypatch.setenv("HV_SECRET", CLIENT_SECRET)


@pytest.fixture
def hydrovu() -> Iterator[FakeHydroVu]:
    with FakeHydroVu(DEMO_DATA_DIR, CLIENT_ID, CLIENT_SECRET, page_days=30) as server:
        yield server


@pytest.fixture
def location(tmp_path: Path) -> str:
    path = str(tmp_path / "pond")
    pond.init(path)
    return path


def documents(*docs: dict) -> str:
    return yaml.safe_dump_all([{"apiVersion": "pondfs/v1", **d} for d in docs],
                              sort_keys=False)


def collector(server: FakeHydroVu, **spec: object) -> dict:
    return {"kind": "HydroVu", "name": "hydrovu", "spec": {
        "base_url": server.base_url, "client_id": "${env:HV_ID}",
        "client_secret": "${env:HV_SECRET}", "limits": {"backoff": 0.01, "retries": 1},
        **spec}}


def pipeline(*steps: dict, name: str = "nightly") -> dict:
    return {"kind": "pipeline", "name": name, "spec": {"steps": list(steps)}}


def pond_run(capsys: pytest.CaptureFixture, location: str, *args: str
             ) -> tuple[int, str, str]:
    """``pond ARGS`` in this process: exit status, stdout, stderr."""
    capsys.readouterr()
    rc = cli.run(["--pond", location, *args])
    out, err = capsys.readouterr()
    return rc, out, err


def apply(capsys: pytest.CaptureFixture, location: str, tmp_path: Path, text: str) -> None:
    path = tmp_path / "resources.yaml"
    path.write_text(text)
    rc, _, err = pond_run(capsys, location, "apply", "-f", str(path))
    assert rc == 0, err


def status_json(capsys: pytest.CaptureFixture, location: str, *args: str
                ) -> tuple[int, dict, str]:
    rc, out, err = pond_run(capsys, location, "status", "-o", "json", *args)
    return rc, json.loads(out), err


def cat_series(location: str, path: str):
    """A series as ``pond cat`` prints it (a new process), read with pyarrow."""
    done = subprocess.run([sys.executable, "-m", "pondfs.cli", "--pond", location, "cat",
                           path], capture_output=True, cwd=REPO, check=True)
    return pq.read_table(io.BytesIO(done.stdout))


def _json_rows(text: str) -> list[dict]:
    """Rows printed by ``-o json``: one array, or one object a line."""
    try:
        return json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def oplog_rows(location: str) -> tuple[int, int]:
    """Rows and data files of the Delta table, read with pyarrow from its file list."""
    files = DeltaTable(str(Path(location) / "oplog")).file_uris()
    return pds.dataset(files, format="parquet").count_rows(), len(files)


def test_status_reports_what_the_runs_recorded(capsys, location, hydrovu, tmp_path):
    apply(capsys, location, tmp_path, documents(collector(hydrovu, silent_after="3650d")))
    hydrovu.set_now(hydrovu.last_timestamp - 3 * 86400)
    rc, out, err = pond_run(capsys, location, "run", COLLECTOR)
    assert rc == 0, err
    hydrovu.advance(3 * 86400)
    assert pond_run(capsys, location, "run", COLLECTOR)[0] == 0

    rc, facts, err = status_json(capsys, location)
    assert rc == 0 and err == "" and facts["problems"] == []
    (state,) = facts["collectors"]
    assert state["name"] == COLLECTOR and state["last_ok"] and state["failed_in_a_row"] == 0
    assert state["silent_after_s"] == 3650 * 86400
    # Each device's newest reading and the last run's rows, from the series themselves.
    series = {}
    for device in state["devices"]:
        (location_id,) = [i for i, n in hydrovu.locations.items() if n == device["name"]]
        table = cat_series(location, f"/hydrovu/devices/{location_id}/{device['name']}.series")
        series[device["name"]] = table
        assert device["newest"] == max(table.column("timestamp").to_pylist())
        assert device["age_s"] == pytest.approx(time.time() - device["newest"], abs=60)
    assert len(series) == len(hydrovu.locations)
    last_rows = sum(t.filter(pc.field("timestamp") > hydrovu.last_timestamp - 3 * 86400
                             ).num_rows for t in series.values())
    assert state["last_rows"] == last_rows > 0
    # Size and transactions, from the Delta table and pond log.
    rows, files = oplog_rows(location)
    assert (facts["size"]["rows"], facts["size"]["data_files"]) == (rows, files)
    objects = [p for p in (Path(location) / "objects").rglob("*") if p.is_file()]
    assert facts["size"]["objects"] == len(objects)
    assert facts["size"]["object_bytes"] == sum(p.stat().st_size for p in objects)
    rc, log_out, _ = pond_run(capsys, location, "log", "-o", "json")
    logged = _json_rows(log_out)
    assert facts["transactions"]["count"] == len(logged)
    assert facts["transactions"]["newest"] == max(t["txn"] for t in logged)
    assert facts["mounts"] == [] and facts["check"] == {"ran": True, "problems": 0}


def test_failed_runs_and_silent_devices_are_problems(capsys, location, hydrovu, tmp_path):
    apply(capsys, location, tmp_path, documents(collector(hydrovu)))
    assert pond_run(capsys, location, "run", COLLECTOR)[0] == 0
    # The demo archives end long ago: every device is silent beyond the default 6 h.
    rc, out, err = pond_run(capsys, location, "status")
    assert rc == 1
    silent = [line for line in err.splitlines() if "silent for" in line]
    assert len(silent) == len(hydrovu.locations) and out.startswith(f"pond {location}\n")
    assert all(line.startswith("problem: collector /etc/hydrovu: device ") for line in silent)

    apply(capsys, location, tmp_path, documents(collector(hydrovu, silent_after="3650d")))
    hydrovu.inject_server_error(count=100)
    rc, _, err = pond_run(capsys, location, "run", COLLECTOR)
    assert rc == 1 and "HTTP 500" in err
    with pond.open_fs(location) as fs:
        newest = fs.transactions()[0]
    assert newest.rows == 0 and newest.runs[0]["ok"] is False  # recorded, nothing written
    rc, facts, err = status_json(capsys, location)
    assert rc == 1 and err.count("\n") == 1 and "the last 1 run(s) failed" in err
    assert facts["collectors"][0]["failed_in_a_row"] == 1
    assert status_json(capsys, location, "--failures", "2")[0] == 0
    pond_run(capsys, location, "run", COLLECTOR)
    rc, _, err = status_json(capsys, location, "--failures", "2")
    assert rc == 1 and "the last 2 run(s) failed" in err
    hydrovu.clear_faults()
    assert pond_run(capsys, location, "run", COLLECTOR)[0] == 0
    assert status_json(capsys, location, "--failures", "2")[0] == 0

    rc, text, _ = pond_run(capsys, location, "status", "-o", "prometheus")
    assert rc == 0
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    assert samples[f'pondfs_collector_failed_runs{{pond="{location}",'
                   f'collector="{COLLECTOR}"}}'] == 0
    assert samples[f'pondfs_rows{{pond="{location}"}}'] == oplog_rows(location)[0]
    assert all(name.startswith("pondfs_") for name in samples)


def test_a_pipeline_runs_its_steps_and_stops_at_a_failure(capsys, location, hydrovu, tmp_path):
    derived = tmp_path / "derived.yaml"
    derived.write_text(documents({"kind": "glob", "name": "all-series", "path": "/all",
                                  "spec": {"in_pattern": "/hydrovu/devices/*/*.series"}}))
    apply(capsys, location, tmp_path, documents(
        collector(hydrovu, silent_after="3650d"),
        pipeline({"run": COLLECTOR}, {"apply": "/etc/derived.yaml", "when": "changed"},
                 {"maintain": True, "when": "changed"})))
    assert pond_run(capsys, location, "cp", f"host:{derived}", "/etc/derived.yaml")[0] == 0
    rc, out, err = pond_run(capsys, location, "run", "nightly")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"step 1/3 run {COLLECTOR}: ok: transaction ")
    assert lines[1].startswith("step 2/3 apply /etc/derived.yaml: ok: transaction ")
    assert lines[2].startswith("step 3/3 maintain 168h: ok")
    assert lines[3].startswith("pipeline /etc/nightly: ok (recorded in transaction ")
    rc, facts, _ = status_json(capsys, location)
    assert rc == 0 and facts["maintain"]["last_txn"] is not None
    (recorded,) = facts["pipelines"]
    assert recorded["name"] == "/etc/nightly" and recorded["last_ok"]

    rc, out, _ = pond_run(capsys, location, "run", "nightly")  # nothing new
    assert rc == 0 and out.splitlines()[1].endswith("skipped: nothing changed")

    hydrovu.inject_server_error(count=100)
    rc, out, err = pond_run(capsys, location, "run", "/etc/nightly")
    assert rc == 1 and err.count("\n") == 1
    assert err.startswith(f"pond run: run {COLLECTOR}: pond run: {COLLECTOR}: ")
    assert out.splitlines()[0].startswith(f"step 1/3 run {COLLECTOR}: failed: ")
    assert out.splitlines()[1].endswith("skipped: an earlier step failed")
    with pond.open_fs(location) as fs:
        (record,) = fs.transactions()[0].runs
    assert record["type"] == "pipeline" and not record["ok"]
    assert [s["result"] for s in record["steps"]] == ["failed", "skipped", "skipped"]


def test_a_bad_pipeline_is_refused_naming_the_field(capsys, location, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(documents(pipeline({"run": "/etc/x", "when": "sometimes"})))
    rc, _, err = pond_run(capsys, location, "apply", "-f", str(path))
    assert rc == 1 and "spec.steps[0].when: must be always or changed" in err
    path.write_text(documents(pipeline({"run": "/etc/x", "site": "/tmp/x"})))
    rc, _, err = pond_run(capsys, location, "apply", "-f", str(path))
    assert rc == 1 and "spec.steps[0]: must have one of run, apply, backup, site, maintain" \
        in err


def test_declared_backup_targets(capsys, location, url, tmp_path, aws):
    apply(capsys, location, tmp_path, documents(
        {"kind": "backup", "name": "offsite", "spec": {"url": url, "keep_last": 1,
                                                         "max_age": 2}}))
    rc, facts, err = status_json(capsys, location)
    assert rc == 1 and "problem: backup /etc/offsite: never pushed" in err
    rc, out, err = pond_run(capsys, location, "backup", "push")
    assert rc == 0, err
    assert out.startswith(f"/etc/offsite: pushed transaction 2 to {url}")
    rc, facts, _ = status_json(capsys, location)
    (target,) = facts["backups"]
    assert rc == 0 and target["declared"] and target["pushed_txn"] == 2
    assert target["lag_txns"] == 0
    pond_run(capsys, location, "mkdir", "/new")
    pond_run(capsys, location, "mkdir", "/newer")
    target = status_json(capsys, location)[1]["backups"][0]
    assert target["lag_txns"] == 2 and target["lag_s"] >= 0
    assert pond_run(capsys, location, "backup", "push")[0] == 0
    rc, out, _ = pond_run(capsys, location, "backup", "list", url)
    points = [line.split()[0] for line in out.splitlines()[1:]]
    assert len(points) == 1  # keep_last: 1 forgot the first
    time.sleep(2.1)
    rc, _, err = status_json(capsys, location)
    assert rc == 1 and "problem: backup /etc/offsite: the newest push is" in err
    rc, _, err = pond_run(capsys, location, "backup", "push", "--to", "/etc/nowhere")
    assert rc == 1 and err == "pond backup push: /etc/nowhere: not a declared backup " \
        "target (kind: backup)\n"


def test_mounts_register_and_unregister(capsys, location, tmp_path):
    from pondfs import mounts

    assert mounts.active(Path(location)) == []
    entry = mounts.register(Path(location), "/mnt/x", "rw")
    (found,) = status_json(capsys, location)[1]["mounts"]
    assert found["pid"] == os.getpid() and found["mountpoint"] == "/mnt/x"
    mounts.unregister(entry)
    stale = Path(location) / mounts.MOUNTS_DIR / "999999999.json"
    stale.write_text(json.dumps({**found, "pid": 999999999}))
    assert status_json(capsys, location)[1]["mounts"] == [] and not stale.exists()


@pytest.fixture
def units(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "units"
    monkeypatch.setenv(schedule.UNIT_DIR_ENV, str(directory))
    return directory


def test_schedule_units_verify_and_run_by_hand(capsys, location, hydrovu, tmp_path, units):
    apply(capsys, location, tmp_path, documents(collector(hydrovu, silent_after="3650d"),
                                                pipeline({"run": COLLECTOR})))
    rc, out, err = pond_run(capsys, location, "schedule", "install", "nightly", "--every",
                            "1h")
    assert rc == 0, err
    service, timer = units / "pondfs-nightly.service", units / "pondfs-nightly.timer"
    assert "Persistent=true" in timer.read_text()
    assert "OnUnitActiveSec=1h" in timer.read_text()
    cron = out.splitlines()[-1]
    assert cron.startswith("0 */1 * * * flock -n ") or cron.startswith("*/")
    env_file = units / "pondfs-nightly.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    if shutil.which("systemd-analyze"):
        done = subprocess.run(["systemd-analyze", "verify", str(service), str(timer)],
                              capture_output=True, text=True)
        problems = [line for line in done.stderr.splitlines() if str(units) in line]
        assert done.returncode == 0 or not problems, done.stderr
    # The service's command line, run by hand with its environment file, does the run.
    exec_start = next(line for line in service.read_text().splitlines()
                      if line.startswith("ExecStart="))[len("ExecStart="):]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env_file.write_text(f"HV_ID={CLIENT_ID}\nHV_SECRET={CLIENT_SECRET}\n")
    for line in env_file.read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    ran = subprocess.run(shlex.split(exec_start), capture_output=True, text=True, env=env,
                         cwd=REPO)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[0].startswith(f"step 1/1 run {COLLECTOR}: ok")
    rc, out, _ = pond_run(capsys, location, "schedule", "list")
    assert out == "nightly: OnUnitActiveSec=1h\n"
    rc, out, _ = pond_run(capsys, location, "schedule", "remove", "nightly")
    assert rc == 0 and not service.exists() and not timer.exists() and env_file.exists()
    rc, _, err = pond_run(capsys, location, "schedule", "remove", "nightly")
    assert rc == 1 and err.startswith("pond schedule remove: no schedule nightly in ")
    rc, _, err = pond_run(capsys, location, "schedule", "install", "x", "--every", "7m")
    assert rc == 0  # written; cron cannot say every 7 minutes, which the output says
    rc, _, err = pond_run(capsys, location, "schedule", "install", "x")
    assert rc == 1 and err == "pond schedule install: give --every DURATION or " \
        "--on-calendar SPEC\n"
