"""The fake HydroVu server, driven over loopback HTTP by a real ``requests`` client.

The device archives come from ``$PONDFS_HYDROVU_DATA``, else the full archives in
``/work/shared/data/hydrovu`` when present, else the demo sample shipped in ``pondfs/demo``.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from pondfs.testing.fake_hydrovu import DEMO_DATA_DIR, FakeHydroVu, archives_in, device_name

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA_DIR = Path("/work/shared/data/hydrovu")
DATA_DIR = Path(
    os.environ.get("PONDFS_HYDROVU_DATA")
    or (SHARED_DATA_DIR if SHARED_DATA_DIR.is_dir() else DEMO_DATA_DIR)
)
CLIENT_ID, CLIENT_SECRET = "test-client", "test-secret"
SCOPE = "read:locations read:data"
TWO_DAYS = 2 * 86_400
Y2K = 946_684_800


def archive_of(device: str, data_dir: Path = DATA_DIR) -> Path:
    (path,) = [p for p in archives_in(data_dir) if device_name(p) == device]
    return path


def archive_triples(path: Path) -> list[tuple[int, str, float]]:
    """Every non-null (timestamp, column, value) of an archive, sorted."""
    table = pq.read_table(path)
    timestamps = table.column("timestamp").to_pylist()
    return sorted(
        (t, column, v)
        for column in table.column_names
        if column != "timestamp"
        for t, v in zip(timestamps, table.column(column).to_pylist(), strict=True)
        if v is not None
    )


@pytest.fixture
def hydrovu() -> Iterator[FakeHydroVu]:
    with FakeHydroVu(DATA_DIR, CLIENT_ID, CLIENT_SECRET) as server:
        yield server


def fetch_token(server: FakeHydroVu) -> str:
    response = requests.post(
        f"{server.base_url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": SCOPE},
        auth=(server.client_id, server.client_secret),
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


@pytest.fixture
def api(hydrovu: FakeHydroVu) -> requests.Session:
    """A session carrying a valid bearer token for ``hydrovu``."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {fetch_token(hydrovu)}"
    return session


def location_named(server: FakeHydroVu, name: str) -> int:
    (location,) = [i for i, n in server.locations.items() if n == name]
    return location


def crawl(
    server: FakeHydroVu, session: requests.Session, location: int, params: dict[str, int]
) -> list[dict]:
    """All data pages of one query, following X-ISI-Next-Page."""
    url = f"{server.base_url}/v1/locations/{location}/data"
    pages, cursor = [], ""
    while True:
        response = session.get(url, params=params, headers={"X-ISI-Start-Page": cursor}, timeout=10)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = response.headers.get("X-ISI-Next-Page", "")
        if not cursor:
            return pages


def page_timestamps(page: dict) -> set[int]:
    return {r["timestamp"] for p in page["parameters"] for r in p["readings"]}


def as_triples(pages: list[dict], names: dict) -> list[tuple[int, str, float]]:
    """Map pages back to archive columns ``<Parameter>.<Unit>`` through friendlynames."""
    return sorted(
        (
            r["timestamp"],
            f"{names['parameters'][p['parameterId']]}.{names['units'][p['unitId']]}",
            r["value"],
        )
        for page in pages
        for p in page["parameters"]
        for r in p["readings"]
    )


# -- authentication ----------------------------------------------------------------------------


def test_token_with_basic_auth(hydrovu: FakeHydroVu) -> None:
    response = requests.post(
        f"{hydrovu.base_url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": SCOPE},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == SCOPE
    assert len(body["access_token"]) >= 32


def test_token_with_form_fields(hydrovu: FakeHydroVu) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    response = requests.post(f"{hydrovu.base_url}/oauth/token", data=form, timeout=10)
    assert response.status_code == 200
    token = response.json()["access_token"]
    listing = requests.get(
        f"{hydrovu.base_url}/v1/locations/list",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert listing.status_code == 200


@pytest.mark.parametrize(
    "auth, form",
    [
        ((CLIENT_ID, "wrong"), {}),
        (("someone-else", CLIENT_SECRET), {}),
        (None, {"client_id": CLIENT_ID, "client_secret": "wrong"}),
        (None, {}),
    ],
)
def test_bad_credentials_get_401(hydrovu: FakeHydroVu, auth, form) -> None:
    response = requests.post(
        f"{hydrovu.base_url}/oauth/token",
        data={"grant_type": "client_credentials", **form},
        auth=auth,
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_wrong_grant_type_is_rejected(hydrovu: FakeHydroVu) -> None:
    response = requests.post(
        f"{hydrovu.base_url}/oauth/token",
        data={"grant_type": "password"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert response.status_code == 400


def test_missing_bad_and_expired_tokens_get_401(hydrovu: FakeHydroVu) -> None:
    url = f"{hydrovu.base_url}/v1/locations/list"
    assert requests.get(url, timeout=10).status_code == 401
    bogus = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bogus.status_code == 401

    token = fetch_token(hydrovu)
    assert (
        requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code
        == 200
    )
    assert hydrovu.expire_tokens() == 1
    for _ in range(2):
        expired = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert expired.status_code == 401
        assert expired.json()["error"] == "invalid_token"
    assert hydrovu.faults_fired["expired_token"] == 2

    fresh = fetch_token(hydrovu)
    assert (
        requests.get(url, headers={"Authorization": f"Bearer {fresh}"}, timeout=10).status_code
        == 200
    )


def test_api_lives_below_the_base_path(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    assert hydrovu.base_url.endswith("/public-api")
    root = hydrovu.base_url.removesuffix("/public-api")
    assert api.get(f"{root}/v1/locations/list", timeout=10).status_code == 404


# -- catalogue and locations -------------------------------------------------------------------


def test_friendlynames(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    response = api.get(f"{hydrovu.base_url}/v1/sispec/friendlynames", timeout=10)
    assert response.status_code == 200
    names = response.json()
    assert set(names) == {"parameters", "units"}
    for table in names.values():
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in table.items())
    assert names["parameters"]["1"] == "Temperature"
    assert names["parameters"]["4"] == "Level: Depth to Water"
    assert names["units"]["65"] == "\u00b5S/cm"
    assert names["units"]["81"] == "\u2126-cm"  # OHM SIGN, as in the archives
    assert any(not k.isdigit() for k in names["parameters"])
    assert "% sat" in names["units"].values()


def test_locations_pagination_collects_every_device(
    hydrovu: FakeHydroVu, api: requests.Session
) -> None:
    url = f"{hydrovu.base_url}/v1/locations/list"
    collected, cursors = [], []
    response = api.get(url, timeout=10)
    while True:
        assert response.status_code == 200
        page = response.json()
        assert len(page) <= 2
        collected += page
        cursor = response.headers.get("x-isi-next-page")  # header names are case-insensitive
        if not cursor:
            break
        cursors.append(cursor)
        response = api.get(url, headers={"X-ISI-Start-Page": cursor}, timeout=10)

    expected = {device_name(p) for p in archives_in(DATA_DIR)}
    assert len(expected) == 4
    assert len(cursors) == 1  # four devices, two per page
    assert all(50 <= len(c) <= 80 for c in cursors)
    assert {loc["name"] for loc in collected} == expected
    assert {loc["id"]: loc["name"] for loc in collected} == hydrovu.locations
    for loc in collected:
        assert isinstance(loc["id"], int) and 10**15 <= loc["id"] < 2**53
        assert isinstance(loc["description"], str)
        assert set(loc["gps"]) == {"latitude", "longitude"}


def test_location_ids_are_stable() -> None:
    with FakeHydroVu(DATA_DIR) as first, FakeHydroVu(DATA_DIR) as second:
        assert first.locations == second.locations


# -- data --------------------------------------------------------------------------------------


def test_full_crawl_reproduces_the_archive(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    names = api.get(f"{hydrovu.base_url}/v1/sispec/friendlynames", timeout=10).json()
    location = location_named(hydrovu, "NoyoCenterAT500_1")
    pages = crawl(hydrovu, api, location, {"startTime": 0})

    assert as_triples(pages, names) == archive_triples(archive_of("NoyoCenterAT500_1"))
    assert all(isinstance(t, int) and isinstance(v, float) for t, _, v in as_triples(pages, names))
    assert all(page["locationId"] == location for page in pages)

    # The clock-glitch rows are served, on the first page.
    assert min(page_timestamps(pages[0])) < Y2K

    starts = [min(page_timestamps(page)) for page in pages]
    for page, start in zip(pages, starts, strict=True):
        assert max(page_timestamps(page)) < start + TWO_DAYS
        for parameter in page["parameters"]:
            assert parameter["customParameter"] is False
            stamps = [r["timestamp"] for r in parameter["readings"]]
            assert stamps == sorted(stamps) and stamps
    assert all(b >= a + TWO_DAYS for a, b in zip(starts, starts[1:], strict=False))
    # Parameter order is arbitrary and varies between pages.
    assert len({tuple(p["parameterId"] for p in page["parameters"]) for page in pages}) > 2


@pytest.mark.parametrize("naming", ["{device}_archive_20260209.series", "{device}.series",
                                    "{device}.parquet"])
def test_series_and_parquet_archives_are_served_alike(tmp_path: Path, naming: str) -> None:
    """DuckPond names its archives ``*.series``: the fake serves them as it serves
    ``*.parquet`` (and ``*.series.parquet``), the same devices under the same ids, every
    reading of each as its archive holds it."""
    for archive in archives_in(DATA_DIR):
        (tmp_path / naming.format(device=device_name(archive))).symlink_to(archive)
    with FakeHydroVu(tmp_path, CLIENT_ID, CLIENT_SECRET, page_days=90) as server, \
            FakeHydroVu(DATA_DIR, CLIENT_ID, CLIENT_SECRET) as reference:
        assert server.locations == reference.locations and len(server.locations) == 4
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {fetch_token(server)}"
        names = session.get(f"{server.base_url}/v1/sispec/friendlynames", timeout=10).json()
        for location, device in server.locations.items():
            pages = crawl(server, session, location, {"startTime": 0})
            assert as_triples(pages, names) == archive_triples(archive_of(device))


def test_parameters_come_and_go_between_pages(tmp_path: Path) -> None:
    hour, start = 3600, 1_700_000_000
    stamps = [start + i * hour for i in range(10 * 24)]
    dissolved_oxygen = [
        None if 2 * 86_400 <= t - start < 6 * 86_400 else float(i) for i, t in enumerate(stamps)
    ]
    dissolved_oxygen[5] = math.nan  # no reading, like a null
    temperature = [None if i % 24 == 12 else 10.5 for i in range(len(stamps))]
    pq.write_table(
        pa.table(
            {
                "timestamp": pa.array(stamps, pa.int64()),
                "DO.mg/L": pa.array(dissolved_oxygen, pa.float64()),
                "Temperature.C": pa.array(temperature, pa.float64()),
            }
        ),
        tmp_path / "Synthetic_archive_20260101.series.parquet",
    )
    with FakeHydroVu(tmp_path) as server:
        assert list(server.locations.values()) == ["Synthetic"]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {fetch_token(server)}"
        names = session.get(f"{server.base_url}/v1/sispec/friendlynames", timeout=10).json()
        pages = crawl(server, session, next(iter(server.locations)), {"startTime": 0})

    def columns(page: dict) -> set[str]:
        return {names["parameters"][p["parameterId"]] for p in page["parameters"]}

    assert [columns(page) for page in pages] == [
        {"DO", "Temperature"},
        {"Temperature"},
        {"Temperature"},
        {"DO", "Temperature"},
        {"DO", "Temperature"},
    ]
    served = {r["timestamp"] for page in pages for p in page["parameters"] for r in p["readings"]}
    # Rows without any reading (here: noons while DO is out) do not exist in the API.
    assert served == {
        t
        for t, o, c in zip(stamps, dissolved_oxygen, temperature, strict=True)
        if (o is not None and not math.isnan(o)) or c is not None
    }
    assert 5 * hour not in {
        r["timestamp"] - start
        for page in pages
        for p in page["parameters"]
        if names["parameters"][p["parameterId"]] == "DO"
        for r in p["readings"]
    }


def test_pages_are_reproducible(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    url = f"{hydrovu.base_url}/v1/locations/{location_named(hydrovu, 'NoyoCenterAT500_2')}/data"
    first = api.get(url, params={"startTime": Y2K}, timeout=10)
    again = api.get(url, params={"startTime": Y2K}, timeout=10)
    assert first.content == again.content


def test_end_time_is_inclusive(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    location = location_named(hydrovu, "NoyoCenterVulink_1")
    stamps = sorted({t for t, _, _ in archive_triples(archive_of("NoyoCenterVulink_1"))})
    some = stamps[len(stamps) // 2]
    pages = crawl(hydrovu, api, location, {"startTime": some, "endTime": some})
    assert [page_timestamps(p) for p in pages] == [{some}]

    window = crawl(hydrovu, api, location, {"startTime": stamps[-200], "endTime": stamps[-100]})
    assert set().union(*map(page_timestamps, window)) == set(stamps[-200:-99])


def test_no_results_past_the_end(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    location = location_named(hydrovu, "NoyoCenterAT500_1")
    last = max(t for t, _, _ in archive_triples(archive_of("NoyoCenterAT500_1")))
    url = f"{hydrovu.base_url}/v1/locations/{location}/data"
    response = api.get(url, params={"startTime": last + 1}, timeout=10)
    assert response.status_code == 404
    assert "No results were found" in response.text
    assert api.get(url, params={"startTime": last}, timeout=10).status_code == 200


def test_unknown_location_and_bad_query(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    base = hydrovu.base_url
    unknown = api.get(
        f"{base}/v1/locations/1234567890123456/data", params={"startTime": 0}, timeout=10
    )
    assert unknown.status_code == 404
    assert "No results were found" not in unknown.text
    location = next(iter(hydrovu.locations))
    assert api.get(f"{base}/v1/locations/{location}/data", timeout=10).status_code == 400
    assert (
        api.get(
            f"{base}/v1/locations/{location}/data", params={"startTime": "x"}, timeout=10
        ).status_code
        == 400
    )


def test_cursor_is_bound_to_its_query(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    url = f"{hydrovu.base_url}/v1/locations/{location_named(hydrovu, 'NoyoCenterAT500_1')}/data"
    first = api.get(url, params={"startTime": 0}, timeout=10)
    cursor = first.headers["X-ISI-Next-Page"]
    assert 50 <= len(cursor) <= 80

    changed = api.get(
        url, params={"startTime": 1}, headers={"X-ISI-Start-Page": cursor}, timeout=10
    )
    assert changed.status_code == 400
    added = api.get(
        url,
        params={"startTime": 0, "endTime": 2_000_000_000},
        headers={"X-ISI-Start-Page": cursor},
        timeout=10,
    )
    assert added.status_code == 400
    made_up = api.get(
        url, params={"startTime": 0}, headers={"X-ISI-Start-Page": "x" * 64}, timeout=10
    )
    assert made_up.status_code == 400

    # The same query continues, and a cursor may be used again (a retry gets the same page).
    second = api.get(url, params={"startTime": 0}, headers={"X-ISI-Start-Page": cursor}, timeout=10)
    retry = api.get(url, params={"startTime": 0}, headers={"X-ISI-Start-Page": cursor}, timeout=10)
    assert second.status_code == 200 and second.content == retry.content
    assert min(page_timestamps(second.json())) > max(page_timestamps(first.json()))


def test_clock_releases_rows(api: requests.Session, hydrovu: FakeHydroVu) -> None:
    location = location_named(hydrovu, "NoyoCenterVulink_1")
    url = f"{hydrovu.base_url}/v1/locations/{location}/data"
    stamps = sorted({t for t, _, _ in archive_triples(archive_of("NoyoCenterVulink_1"))})
    cut = stamps[-300]

    hydrovu.set_now(cut)
    assert hydrovu.now == cut
    held_back = set().union(*map(page_timestamps, crawl(hydrovu, api, location, {"startTime": 0})))
    assert held_back == {t for t in stamps if t <= cut}
    assert api.get(url, params={"startTime": cut + 1}, timeout=10).status_code == 404

    assert hydrovu.advance(7 * 86_400) == cut + 7 * 86_400
    week = set().union(*map(page_timestamps, crawl(hydrovu, api, location, {"startTime": cut + 1})))
    assert week == {t for t in stamps if cut < t <= cut + 7 * 86_400}
    assert week


def test_requests_are_logged_and_counted(hydrovu: FakeHydroVu) -> None:
    token = fetch_token(hydrovu)
    headers = {"Authorization": f"Bearer {token}"}
    counts = [
        int(
            requests.get(
                f"{hydrovu.base_url}/v1/sispec/friendlynames", headers=headers, timeout=10
            ).headers["x-isi-requests-this-minute"]
        )
        for _ in range(3)
    ]
    assert counts == [counts[0], counts[0] + 1, counts[0] + 2]
    assert counts[0] >= 2  # the token request counted too
    log = hydrovu.requests
    assert [(r.method, r.path, r.status) for r in log] == [
        ("POST", "/oauth/token", 200),
        *[("GET", "/v1/sispec/friendlynames", 200)] * 3,
    ]
    hydrovu.clear_requests()
    assert hydrovu.requests == []


# -- faults ------------------------------------------------------------------------------------


def test_rate_limit_fault(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    fault = hydrovu.inject_rate_limit(count=2, retry_after=7)
    url = f"{hydrovu.base_url}/v1/locations/list"
    limited = [api.get(url, timeout=10) for _ in range(2)]
    assert [r.status_code for r in limited] == [429, 429]
    assert all(r.headers["Retry-After"] == "7" for r in limited)
    assert api.get(url, timeout=10).status_code == 200
    assert fault.fired == 2 and fault.remaining == 0
    assert hydrovu.faults_fired == {"rate_limit": 2}
    assert [r.fault for r in hydrovu.requests[-3:]] == ["rate_limit", "rate_limit", None]


def test_server_error_fault_per_path_prefix(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    fault = hydrovu.inject_server_error(status=503, path_prefix="/v1/locations/")
    base = hydrovu.base_url
    assert api.get(f"{base}/v1/sispec/friendlynames", timeout=10).status_code == 200
    assert fetch_token(hydrovu)  # the token endpoint is outside the prefix
    assert fault.fired == 0
    assert api.get(f"{base}/v1/locations/list", timeout=10).status_code == 503
    assert api.get(f"{base}/v1/locations/list", timeout=10).status_code == 200
    assert fault.fired == 1
    assert hydrovu.faults_fired["server_error"] == 1


def test_token_endpoint_faults(hydrovu: FakeHydroVu) -> None:
    hydrovu.inject_server_error(path_prefix="/oauth/token")
    response = requests.post(
        f"{hydrovu.base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert response.status_code == 500
    assert fetch_token(hydrovu)


def test_delay_fault_outlasts_a_client_timeout(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    fault = hydrovu.inject_delay(5.0)
    url = f"{hydrovu.base_url}/v1/locations/list"
    with pytest.raises(requests.Timeout):
        api.get(url, timeout=0.3)
    assert fault.fired == 1
    assert api.get(url, timeout=10).status_code == 200


def test_malformed_json_fault_hits_a_data_page(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    fault = hydrovu.inject_malformed_json()
    assert api.get(f"{hydrovu.base_url}/v1/locations/list", timeout=10).json()
    url = f"{hydrovu.base_url}/v1/locations/{next(iter(hydrovu.locations))}/data"
    broken = api.get(url, params={"startTime": 0}, timeout=10)
    assert broken.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        broken.json()
    assert fault.fired == 1
    assert api.get(url, params={"startTime": 0}, timeout=10).json()["parameters"]


def test_legacy_empty_results_switch(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    location = next(iter(hydrovu.locations))
    url = f"{hydrovu.base_url}/v1/locations/{location}/data"
    hydrovu.set_legacy_empty_results()
    response = api.get(url, params={"startTime": 4_000_000_000}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {"locationId": location, "parameters": []}
    assert "X-ISI-Next-Page" not in response.headers
    assert hydrovu.faults_fired["legacy_empty_results"] == 1
    hydrovu.clear_faults()
    assert api.get(url, params={"startTime": 4_000_000_000}, timeout=10).status_code == 404


def test_control_endpoint(hydrovu: FakeHydroVu, api: requests.Session) -> None:
    def control(**command) -> requests.Response:
        return requests.post(hydrovu.control_url, json=command, timeout=10)

    state = control(action="rate_limit", count=1, retry_after=3).json()
    assert [f["kind"] for f in state["pending_faults"]] == ["rate_limit"]
    assert api.get(f"{hydrovu.base_url}/v1/locations/list", timeout=10).status_code == 429
    assert control(action="status").json()["faults_fired"] == {"rate_limit": 1}

    assert control(action="set_now", now=1_700_000_000).json()["now"] == 1_700_000_000
    assert control(action="advance", seconds=60).json()["now"] == 1_700_000_060
    assert hydrovu.now == 1_700_000_060

    control(action="expire_tokens")
    assert api.get(f"{hydrovu.base_url}/v1/locations/list", timeout=10).status_code == 401

    assert control(action="explode").status_code == 400
    assert control(action="delay", bogus=1).status_code == 400
    assert requests.get(hydrovu.control_url, timeout=10).json()["requests"] == len(hydrovu.requests)


# -- life cycle --------------------------------------------------------------------------------


def test_close_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    server = FakeHydroVu(DATA_DIR, CLIENT_ID, CLIENT_SECRET)
    server.inject_delay(30)
    stalled = threading.Thread(
        target=lambda: pytest.raises(
            requests.RequestException,
            requests.get,
            f"{server.base_url}/v1/locations/list",
            timeout=0.5,
        )
    )
    stalled.start()
    stalled.join()
    server.close()
    server.close()  # idempotent
    assert set(threading.enumerate()) == before
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base_url}/v1/locations/list", timeout=2)


def test_demo_sample_is_the_default() -> None:
    files = sorted(DEMO_DATA_DIR.glob("*.parquet"))
    assert 250_000 <= sum(p.stat().st_size for p in files) <= 500_000
    with FakeHydroVu() as demo:
        assert sorted(demo.locations.values()) == [p.stem for p in files]
        assert demo.now == max(
            pq.read_table(p, columns=["timestamp"]).column("timestamp").to_pylist()[-1]
            for p in files
        )
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {fetch_token(demo)}"
        pages = crawl(demo, session, location_named(demo, "NoyoCenterAT500_1"), {"startTime": 0})
        stamps = set().union(*map(page_timestamps, pages))
        assert any(t < Y2K for t in stamps)  # the sample keeps the clock-glitch rows
        assert max(stamps) - min(t for t in stamps if t >= Y2K) <= 61 * 86_400


@pytest.mark.skipif(not SHARED_DATA_DIR.is_dir(), reason="needs the full archives")
def test_demo_sample_keeps_the_archive_columns() -> None:
    for archive in SHARED_DATA_DIR.glob("*.parquet"):
        sample = DEMO_DATA_DIR / f"{device_name(archive)}.parquet"
        assert pq.read_schema(sample).equals(pq.read_schema(archive))
        full = set(archive_triples(archive))
        assert set(archive_triples(sample)) <= full


def test_cli_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pondfs.testing.fake_hydrovu",
            "--data",
            str(DATA_DIR),
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--now",
            str(Y2K),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/public-api")
        token = requests.post(
            f"{base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=10,
        ).json()["access_token"]
        listing = requests.get(
            f"{base_url}/v1/locations/list",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert listing.status_code == 200 and len(listing.json()) == 2
        control = base_url.removesuffix("/public-api") + "/_fake/control"
        assert requests.get(control, timeout=10).json()["now"] == Y2K
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()
    assert "Traceback" not in stderr, stderr
    process.stdout.close()
    process.stderr.close()


def test_cli_reports_a_missing_data_dir(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pondfs.testing.fake_hydrovu", "--data", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().startswith("fake_hydrovu: no *.series or *.parquet archives")
