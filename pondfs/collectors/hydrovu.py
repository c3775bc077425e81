"""The HydroVu collector: readings of In-Situ water-quality devices into pond series.

A resource of kind ``HydroVu`` (see :mod:`pondfs.resources`)::

    apiVersion: pondfs/v1
    kind: HydroVu
    name: hydrovu                       # the node is /etc/hydrovu unless `path` says otherwise
    spec:
      base_url: https://www.hydrovu.com/public-api    # the default
      client_id: ${env:HYDROVU_CLIENT_ID}             # references only: never the secret itself
      client_secret: ${env:HYDROVU_CLIENT_SECRET}
      output: /hydrovu                  # the default
      floor: 2000-01-01                 # readings before it are dropped (clock glitches)
      silent_after: 6h                  # pond status reports a device without newer readings
      devices:                          # optional: without it, every location of the account
        - {id: 4918173950304032, name: AT500_1, active: true, comment: "north dock sonde"}
      limits:                           # all optional; the defaults are shown
        max_pages: 1000                 # data pages per device per run
        max_points: 10000000            # readings per device per run
        timeout: 60                     # seconds, per HTTP request
        retries: 5                      # per request, for 429, 5xx, timeouts, lost connections
        backoff: 1                      # seconds before the first retry; doubles each time
        max_backoff: 60

**Layout.** Each device has one series, ``<output>/devices/<location id>/<name>.series``:
``timestamp`` (int64 epoch seconds, UTC) and one float64 column ``<Parameter>.<Unit>`` per
parameter, null where a reading is missing. The directory is named by the location id,
which never changes, so renaming a device in the spec renames its file (on its next new
data) instead of starting a second series; the file name keeps listings readable.

**Runs.** A run appends at most one new version per device, holding the rows that are new
since the newest timestamp already in that series (``startTime`` = that + 1, or the floor).
The pond is the only state: nothing is remembered elsewhere, so a failed or lost run is
simply followed by one that resumes where the pond ends.

**Transactions and failures.** A run is part of one pond transaction (``pond run`` commits
it). The pages of a device are fetched in time order and each one is complete, so a device
that fails after some pages keeps those pages: its version ends at the last complete page
and the next run continues after it. A device that fails contributes what it had; the other
devices are collected as usual; the transaction is committed and the run then reports every
failure and exits non-zero (friendly to cron: one bad device or one bad hour does not hold
back the others, and nothing is fetched twice). Failures that stop the whole run before any
device (bad credentials, no friendly names or locations) write nothing.

**Faults.** 429 waits ``Retry-After`` (else the backoff); 5xx, timeouts and lost connections
are retried with exponential backoff, at most ``limits.retries`` times per request; a 401
gets one new token and one retry; a 404 "No results were found", or a page without
parameters and without a next cursor, means nothing new. A malformed JSON answer or an
answer of an unexpected shape is an error naming the device and the page (not retried).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pyarrow as pa
import requests

from ..kinds import Kind
from ..resources import Fields, SpecError, env_reference, makedirs, resolve_env
from ..runs import DEFAULT_SILENT_AFTER
from ..tinyfs import FS, FsError, SchemaConflict, join_path, split_path, validate_name
from . import CollectorError, Progress, RunReport, SourceReport

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://www.hydrovu.com/public-api"
SCOPE = "read:locations read:data"
NO_RESULTS = "No results were found"
#: 2000-01-01T00:00:00Z: readings before it come from devices with a bad clock.
DEFAULT_FLOOR = 946_684_800


@dataclass(frozen=True)
class Device:
    """A device to collect: a HydroVu location id and the name of its series."""

    id: int
    name: str | None = None
    active: bool = True
    comment: str = ""


@dataclass(frozen=True)
class Limits:
    """Bounds on one run and on retries (see the module docstring for the defaults)."""

    max_pages: int = 1000
    max_points: int = 10_000_000
    timeout: float = 60.0
    retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0


@dataclass(frozen=True)
class Settings:
    """A checked HydroVu spec; the credentials are still ``${env:...}`` references."""

    base_url: str
    client_id: str
    client_secret: str
    output: str
    floor: int
    devices: tuple[Device, ...]
    limits: Limits
    silent_after: float = DEFAULT_SILENT_AFTER

    @classmethod
    def parse(cls, spec: dict) -> Settings:
        """Check ``spec``; raise SpecError naming the first bad field."""
        fields = Fields(spec, "spec")
        base_url = fields.get("base_url", str, DEFAULT_BASE_URL).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise SpecError(fields.field("base_url"), f"must be an http(s) URL, not {base_url!r}")
        client_id = env_reference(fields, "client_id")
        client_secret = env_reference(fields, "client_secret")
        output = fields.get("output", str, "/hydrovu")
        if not output.startswith("/") or any(p in (".", "..") for p in split_path(output)):
            raise SpecError(fields.field("output"), f"must be an absolute pond path, not "
                            f"{output!r}")
        floor = _epoch(fields, "floor")
        devices = tuple(_device(item, f"spec.devices[{i}]")
                        for i, item in enumerate(fields.get("devices", list, [])))
        ids = [d.id for d in devices]
        for i, device in enumerate(devices):
            if ids.index(device.id) != i:
                raise SpecError(f"spec.devices[{i}].id", f"{device.id} is listed twice")
        limits = _limits(Fields(fields.get("limits", dict, {}), "spec.limits"))
        silent_after = fields.duration("silent_after", DEFAULT_SILENT_AFTER)
        assert silent_after is not None
        fields.done()
        return cls(base_url, client_id, client_secret, "/" + "/".join(split_path(output)),
                   floor, devices, limits, silent_after)


def _epoch(fields: Fields, key: str) -> int:
    value = fields.get(key, (int, str, dt.date), DEFAULT_FLOOR)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise SpecError(fields.field(key), f"must be epoch seconds or an ISO date, not "
                            f"{value!r}") from None
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp())


def _device(item: Any, where: str) -> Device:
    fields = Fields(item, where)
    device_id = fields.get("id", int)
    if device_id <= 0:
        raise SpecError(fields.field("id"), f"must be a HydroVu location id, not {device_id}")
    name = fields.get("name", str, None)
    if name is not None:
        try:
            validate_name(name + ".series")
        except FsError as exc:
            raise SpecError(fields.field("name"), str(exc)) from None
    device = Device(device_id, name, fields.get("active", bool, True),
                    fields.get("comment", str, ""))
    fields.done()
    return device


def _limits(fields: Fields) -> Limits:
    limits = Limits(
        max_pages=fields.integer("max_pages", Limits.max_pages, minimum=1),
        max_points=fields.integer("max_points", Limits.max_points, minimum=1),
        timeout=fields.number("timeout", Limits.timeout, positive=True),
        retries=fields.integer("retries", Limits.retries),
        backoff=fields.number("backoff", Limits.backoff),
        max_backoff=fields.number("max_backoff", Limits.max_backoff),
    )
    fields.done()
    return limits


# ---------------------------------------------------------------------- the API


class HydroVuClient:
    """The HydroVu public API: OAuth2 client credentials, retries, cursor pagination.

    ``client_id`` and ``client_secret`` are the resolved secrets: they go into the token
    request's Basic header and nowhere else (not into messages or logs).
    """

    def __init__(self, base_url: str, client_id: str, client_secret: str, limits: Limits,
                 *, sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.limits = limits
        self.sleep = sleep
        self.session = requests.Session()
        self._credentials = (client_id, client_secret)
        self._token: str | None = None

    def close(self) -> None:
        self.session.close()

    # -- requests with retries

    def _send(self, method: str, url: str, what: str, headers: dict[str, str] | None = None,
              **kwargs: Any) -> requests.Response:
        """One request, retried on 429, 5xx, timeouts and lost connections up to the limit;
        a GET refused with 401 gets one new token and one more try."""
        tries = 0
        refreshed = False
        while True:
            sent = dict(headers or {})
            if method == "GET":
                sent["Authorization"] = f"Bearer {self.token()}"
            delay = min(self.limits.backoff * 2**tries, self.limits.max_backoff)
            try:
                response = self.session.request(method, url, headers=sent,
                                                timeout=self.limits.timeout, **kwargs)
            except requests.Timeout:
                problem = f"no answer within {self.limits.timeout:g} s"
            except requests.ConnectionError as exc:
                problem = f"connection failed ({type(exc).__name__})"
            else:
                status = response.status_code
                if status == 401 and method == "GET" and not refreshed:
                    log.debug("%s: 401, fetching a new token", what)
                    self._token, refreshed = None, True
                    continue
                if status == 429:
                    delay = _retry_after(response.headers.get("Retry-After"), delay)
                    problem = "rate limited (429)"
                elif status >= 500:
                    problem = f"HTTP {status} {response.reason or ''}".rstrip()
                else:
                    return response
            tries += 1
            if tries > self.limits.retries:
                raise CollectorError(f"{what}: {problem}; gave up after {tries} tries")
            log.debug("%s: %s; retry %d in %.2f s", what, problem, tries, delay)
            self.sleep(delay)

    def token(self) -> str:
        """A bearer token, fetched when there is none (or the last one was refused)."""
        if self._token is None:
            response = self._send(
                "POST", f"{self.base_url}/oauth/token", "token request",
                data={"grant_type": "client_credentials", "scope": SCOPE},
                auth=self._credentials)
            if response.status_code != 200:
                raise CollectorError(f"HydroVu refused the client credentials "
                                     f"({_status(response)})")
            body = _decode(response, "token request")
            if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
                raise CollectorError("token request: unexpected answer (no access_token)")
            self._token = body["access_token"]
        return self._token

    def get(self, path: str, what: str, cursor: str = "") -> requests.Response:
        """GET ``{base}/v1/{path}`` (``path`` carries its query string, the same for every
        page), from page ``cursor``."""
        headers = {"X-ISI-Start-Page": cursor} if cursor else {}
        response = self._send("GET", f"{self.base_url}/v1/{path}", what, headers=headers)
        if response.status_code == 401:
            raise CollectorError(f"{what}: HydroVu refused a new token ({_status(response)})")
        return response

    # -- endpoints

    def friendly_names(self) -> tuple[dict[str, str], dict[str, str]]:
        """Parameter and unit names by id."""
        what = "friendly names"
        response = self.get("sispec/friendlynames", what)
        _require_ok(response, what)
        body = _decode(response, what)
        try:
            return ({str(k): str(v) for k, v in body["parameters"].items()},
                    {str(k): str(v) for k, v in body["units"].items()})
        except (KeyError, TypeError, AttributeError):
            raise CollectorError(f"{what}: unexpected answer (no parameters and units "
                                 "mappings)") from None

    def locations(self) -> dict[int, str]:
        """Every location of the account: id -> name (all pages)."""
        found: dict[int, str] = {}
        cursor, page = "", 0
        while True:
            page += 1
            what = f"locations page {page}"
            response = self.get("locations/list", what, cursor)
            _require_ok(response, what)
            body = _decode(response, what)
            if not isinstance(body, list):
                raise CollectorError(f"{what}: unexpected answer (not a list)")
            for i, location in enumerate(body):
                if not isinstance(location, dict) or type(location.get("id")) is not int:
                    raise CollectorError(f"{what}: unexpected answer (item {i} has no id)")
                found[location["id"]] = str(location.get("name") or location["id"])
            cursor = response.headers.get("X-ISI-Next-Page", "").strip()
            if not cursor:
                return found

    def data_pages(self, location_id: int, start: int) -> Iterator[tuple[int, Any]]:
        """(page number, decoded page) of the readings at or after ``start``, in time order.

        Ends at the last page, at 404 "No results were found", or at a page without
        parameters and without a next cursor (the older "nothing new" answer). The next
        page is requested (in one helper thread, so one request at a time) as soon as its
        cursor is known, while the caller decodes and keeps this one.
        """
        path = f"locations/{location_id}/data?{urlencode({'startTime': start})}"

        def fetch(page: int, cursor: str) -> requests.Response:
            return self.get(path, f"page {page} (startTime={start})", cursor)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hydrovu-fetch") as helper:
            page = 1
            pending: Future[requests.Response] | None = helper.submit(fetch, 1, "")
            while pending is not None:
                what = f"page {page} (startTime={start})"
                response = pending.result()
                if response.status_code == 404 and NO_RESULTS in response.text:
                    return
                if response.status_code == 404:
                    raise CollectorError(f"{what}: location {location_id} not found "
                                         f"({_status(response)})")
                _require_ok(response, what)
                cursor = response.headers.get("X-ISI-Next-Page", "").strip()
                following = helper.submit(fetch, page + 1, cursor) if cursor else None
                yield page, _decode(response, what)
                page, pending = page + 1, following


def _retry_after(value: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if value is None:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(when.timestamp() - time.time(), 0.0)


def _status(response: requests.Response) -> str:
    try:
        body = json.loads(response.content)
        message = body.get("message") or body.get("error_description") or body.get("error")
    except (ValueError, AttributeError):
        message = None
    message = message or response.text[:200].strip() or response.reason
    return f"HTTP {response.status_code}: {message}"


def _require_ok(response: requests.Response, what: str) -> None:
    if response.status_code != 200:
        raise CollectorError(f"{what}: {_status(response)}")


def _decode(response: requests.Response, what: str) -> Any:
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise CollectorError(f"{what}: malformed JSON ({exc})") from None


# ---------------------------------------------------------------------- readings


class Readings:
    """One device's readings, page by page, pivoted wide on the timestamp.

    Readings before ``low`` (the floor, or where the pond's series ends) are dropped, so a
    glitched clock or a server that ignores ``startTime`` adds nothing old; a repeated
    (timestamp, column) keeps the last value.
    """

    def __init__(self, low: int, parameters: dict[str, str], units: dict[str, str]):
        self.low = low
        self.parameters = parameters
        self.units = units
        self.columns: dict[str, dict[int, float]] = {}
        self.times: set[int] = set()
        self.points = 0

    def add(self, body: Any, location_id: int, what: str) -> None:
        """Take one decoded data page; CollectorError naming ``what`` if its shape is wrong."""
        if not isinstance(body, dict) or not isinstance(body.get("parameters"), list):
            raise CollectorError(f"{what}: unexpected answer (no parameters list)")
        if body.get("locationId", location_id) != location_id:
            raise CollectorError(f"{what}: unexpected answer (locationId "
                                 f"{body.get('locationId')!r})")
        low, columns, points, seen = self.low, self.columns, 0, self.times.add
        for i, parameter in enumerate(body["parameters"]):
            try:
                name = self._column(parameter["parameterId"], parameter["unitId"])
                values = columns.get(name)
                for reading in parameter["readings"]:
                    when, value = reading["timestamp"], reading["value"]
                    if type(when) is not int:
                        raise TypeError(f"timestamp {when!r}")
                    if value is None or when < low:
                        continue
                    if type(value) is not float and type(value) is not int:
                        raise TypeError(f"value {value!r}")
                    if values is None:
                        values = columns[name] = {}
                    values[when] = value
                    seen(when)
                    points += 1
            except (KeyError, TypeError) as exc:
                raise CollectorError(f"{what}: unexpected answer (parameters[{i}]: "
                                     f"{type(exc).__name__} {exc})") from None
        self.points += points

    def _column(self, parameter_id: Any, unit_id: Any) -> str:
        """``<Parameter>.<Unit>`` by friendly name (an id without a name stands for itself)."""
        parameter, unit = str(parameter_id), str(unit_id)
        return f"{self.parameters.get(parameter, parameter)}.{self.units.get(unit, unit)}"

    def table(self) -> pa.Table:
        """The readings as a table: ``timestamp`` then the columns by name."""
        times = sorted(self.times)
        data: dict[str, pa.Array] = {"timestamp": pa.array(times, pa.int64())}
        for name in sorted(self.columns):
            get = self.columns[name].get
            data[name] = pa.array([get(t) for t in times], pa.float64())
        return pa.table(data)


# ---------------------------------------------------------------------- the collector


def run(fs: FS, node_id: str, path: str, settings: Settings, progress: Progress) -> RunReport:
    """Collect every configured (or every listed) device's new readings into its series."""
    client = HydroVuClient(settings.base_url,
                           resolve_env(settings.client_id, "spec.client_id"),
                           resolve_env(settings.client_secret, "spec.client_secret"),
                           settings.limits)
    try:
        return _Run(fs, path, settings, client, progress).collect()
    finally:
        client.close()


class _Run:
    def __init__(self, fs: FS, path: str, settings: Settings, client: HydroVuClient,
                 progress: Progress):
        self.fs = fs
        self.path = path
        self.settings = settings
        self.client = client
        self.progress = progress
        self.uid, self.gid = os.getuid(), os.getgid()

    def collect(self) -> RunReport:
        parameters, units = self.client.friendly_names()
        locations = self.client.locations()
        if self.settings.devices:
            devices = [d for d in self.settings.devices if d.active]
        else:
            devices = [Device(i) for i in sorted(locations, key=lambda i: (locations[i], i))]
        report = RunReport(self.path, silent_after=self.settings.silent_after)
        for device in devices:
            name = device.name or _file_name(locations.get(device.id, ""), device.id)
            source = SourceReport(name)
            report.sources.append(source)
            try:
                if device.id not in locations:
                    raise CollectorError("not among the account's locations")
                self._device(device.id, name, source, parameters, units)
            except CollectorError as exc:
                source.error = f"device {name} (location {device.id}): {exc}"
        return report

    def _device(self, location_id: int, name: str, source: SourceReport,
                parameters: dict[str, str], units: dict[str, str]) -> None:
        """Append what is new for one device; a failure after some pages keeps those pages
        and is raised afterwards."""
        folder = join_path(join_path(self.settings.output, "devices"), str(location_id))
        existing = self._series(folder, name)
        start = self.settings.floor
        if existing is not None:
            last = _last_time(self.fs, existing[1])
            source.newest = last
            if last is not None:
                start = max(start, last + 1)
        readings = Readings(start, parameters, units)
        limits = self.settings.limits
        failure = None
        try:
            for page, body in self.client.data_pages(location_id, start):
                readings.add(body, location_id, f"page {page} (startTime={start})")
                source.pages = page
                self.progress.update(name, page, len(readings.times))
                if page >= limits.max_pages or readings.points >= limits.max_points:
                    source.limited = True
                    break
        except CollectorError as exc:
            failure = exc
        if readings.columns:
            try:
                self._append(folder, name, existing, readings.table(), source)
            except SchemaConflict as exc:
                raise CollectorError(str(exc)) from None
        if failure is not None:
            raise failure

    def _append(self, folder: str, name: str, existing: tuple[str, str] | None,
                table: pa.Table, source: SourceReport) -> None:
        dir_id = makedirs(self.fs, folder, self.uid, self.gid)
        file_name = f"{name}.series"
        if existing is None:
            node_id = self.fs.create(dir_id, file_name, "series", 0o644, self.uid, self.gid)
        else:
            node_id = existing[1]
        # Before the rename: a batch the series refuses leaves this device as it was.
        self.fs.append_series(node_id, table, "timestamp",
                              what=join_path(folder, file_name))
        if existing is not None and existing[0] != file_name:
            self.fs.rename(dir_id, existing[0], dir_id, file_name)
        source.rows = table.num_rows
        times = table.column("timestamp")
        source.first, source.last = times[0].as_py(), times[-1].as_py()
        source.newest = source.last
        log.info("%s: %d rows in %d pages, %d..%d", name, source.rows, source.pages,
                 source.first, source.last)

    def _series(self, folder: str, name: str) -> tuple[str, str] | None:
        """(file name, node id) of the device's series: its name, or the one series there
        (named differently before)."""
        try:
            dir_id = self.fs.resolve(folder)
        except FsError:
            return None
        found = {n: i for n, i in self.fs.listdir(dir_id).items() if n.endswith(".series")}
        wanted = f"{name}.series"
        if wanted in found:
            return wanted, found[wanted]
        if len(found) == 1:
            return next(iter(found.items()))
        if found:
            raise CollectorError(f"{folder} holds several series ({', '.join(sorted(found))}) "
                                 f"and none is {wanted}")
        return None


def _file_name(location_name: str, location_id: int) -> str:
    """A series name from a location's name ('/' replaced), or its id."""
    name = location_name.replace("/", "_").strip()
    try:
        return validate_name(name + ".series")[: -len(".series")] if name else str(location_id)
    except FsError:
        return str(location_id)


def _last_time(fs: FS, node_id: str) -> int | None:
    """The newest event time of a series, from its versions' recorded ranges."""
    times = [v.max_time for v in fs.versions(node_id) if v.max_time is not None]
    pending = fs.get(node_id).max_time
    if pending is not None:
        times.append(pending)
    return max(times, default=None)


KIND = Kind("HydroVu", validate=Settings.parse, run=run,
            makes=lambda settings: [settings.output])
