"""A fake HydroVu server: a real HTTP server on loopback that replays device archives.

pondfs collects from In-Situ's HydroVu public API, which tests and demos cannot reach. This module
stands in for it, speaking the protocol described in ``hydrovu-api.md`` closely enough that a
collector written against it works unchanged against ``https://www.hydrovu.com/public-api``:

* the API lives under a path prefix (``base_url`` ends in ``/public-api``), so a client that
  joins URLs wrongly fails here as it would against the real service;
* ``POST oauth/token``: OAuth2 client credentials, from HTTP Basic or ``client_id`` /
  ``client_secret`` form fields; every ``v1/`` endpoint needs ``Authorization: Bearer <token>``;
* ``GET v1/sispec/friendlynames``: parameter and unit names keyed by *string* ids;
* ``GET v1/locations/list`` and ``GET v1/locations/{id}/data?startTime=S[&endTime=E]``:
  paginated with the ``X-ISI-Start-Page`` request header and ``X-ISI-Next-Page`` response header;
* every API response carries ``x-isi-requests-this-minute``.

Each archive in the data directory is one location: a Parquet file (``timestamp`` int64 epoch
seconds plus one nullable float64 ``<Parameter>.<Unit>`` column per parameter, the layout of
DuckPond's archives) named ``*.series``, as DuckPond names its archives, or ``*.parquet``;
``NoyoCenterAT500_1_archive_20260209.series``, ``...series.parquet`` and
``NoyoCenterAT500_1.parquet`` all name the device ``NoyoCenterAT500_1``. Near-epoch
clock-glitch rows are served as they are, like the real service does.

Choices made where the real behaviour is [unsure]:

* ``endTime`` is inclusive; ``startTime`` is required (400 without it), which is stricter than
  the real service may be and catches a collector that forgets it.
* A data page holds the readings in ``[t0, t0 + page_days)``, where ``t0`` is the first reading
  at or after the requested (or cursor) start, so gaps in the record cost no empty pages.
  Parameters with no value in a page are left out of it; parameter order within a page is
  shuffled by a RNG seeded with (location, t0): arbitrary but reproducible.
* Cursors are random 64-character URL-safe tokens mapped to server-side state that records the
  path and the exact query string. Another query with that cursor, or an unknown cursor, gets
  400. A cursor stays valid after use, so a client may retry a failed page with it.
* Ids: parameters and units named in the API notes keep their real ids (1 Temperature, 65 µS/cm,
  ...); other names get a slug id (``"do"``, ``"saturation-o2"``, ``"sat"``), so some ids are
  not digits. Location ids are 16-digit integers below 2**53 derived from the device name.
* Names are served exactly as the archive columns spell them, e.g. U+2126 OHM SIGN in
  ``Ω-cm`` and U+00B5 MICRO SIGN in ``µS/cm`` (the API notes print U+03A9 GREEK OMEGA).
* 429 is never produced by load, only by injected faults (with ``Retry-After``).
* HTTP/1.0, one request per connection, so closing the server never waits on idle keep-alives.
* An unknown location gets 404 without the "No results were found" text.

Test controls, from Python or from another process through ``POST /_fake/control`` (see
:meth:`FakeHydroVu.control`): a clock (rows after ``now`` are not released yet), injected faults
(429, 5xx, slow responses, a truncated JSON data page, expired tokens, the older "200 with empty
``parameters``" answer), and a log of every API request.

Run ``python -m pondfs.testing.fake_hydrovu --help`` to serve from the command line; the first
line on stdout is the base URL.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import functools
import hashlib
import json
import logging
import random
import re
import secrets
import signal
import sys
import threading
import time
import unicodedata
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

#: The demo sample shipped with pondfs (see ``scripts/make_demo_sample.py``).
DEMO_DATA_DIR = Path(__file__).resolve().parent.parent / "demo"
#: Path prefix of the API, as in ``https://www.hydrovu.com/public-api``.
API_PREFIX = "/public-api"
#: Back channel for test controls; outside the API, needs no token, is not logged.
CONTROL_PATH = "/_fake/control"
DEFAULT_SCOPE = "read:locations read:data"
NO_RESULTS_MESSAGE = "No results were found for the requested location and time range"

#: Ids the real service uses, as far as they are known. Names are spelled as in the archives,
#: which took them from HydroVu: U+00B5 MICRO SIGN and U+2126 OHM SIGN (NFC normalisation would
#: turn the latter into U+03A9 GREEK CAPITAL LETTER OMEGA and break the column names).
KNOWN_PARAMETERS = {
    "1": "Temperature",
    "2": "Pressure",
    "3": "Depth",
    "4": "Level: Depth to Water",
    "5": "Level: Elevation",
    "9": "Actual Conductivity",
    "10": "Specific Conductivity",
    "11": "Resistivity",
    "12": "Salinity",
    "13": "Total Dissolved Solids",
    "14": "Density",
    "16": "Baro",
    "26": "Battery Voltage",
    "33": "Battery Level",
}
KNOWN_UNITS = {
    "1": "C",
    "17": "psi",
    "35": "m",
    "65": "\u00b5S/cm",
    "81": "\u2126-cm",
    "97": "psu",
    "117": "mg/L",
    "129": "g/cm³",
    "163": "V",
    "241": "%",
}

_CURSORS_KEPT = 10_000
#: What an archive's name ends with.
ARCHIVE_SUFFIXES = (".series", ".parquet")
_ARCHIVE_SUFFIX = re.compile(r"(_archive_\d+)?(\.series|\.parquet|\.series\.parquet)$")
_DATA_PATH = re.compile(r"/v1/locations/(\d+)/data")
# Noyo Harbor, where the sample devices were deployed; each location is placed near it.
_SITE_LATITUDE, _SITE_LONGITUDE = 39.4258, -123.8053


class SiSpec:
    """The friendly-name catalogue: string ids for parameter and unit names."""

    def __init__(self) -> None:
        self.parameters = dict(KNOWN_PARAMETERS)
        self.units = dict(KNOWN_UNITS)

    def parameter_id(self, name: str) -> str:
        """The id of parameter ``name``, assigning one if it is new."""
        return _id_for(self.parameters, name)

    def unit_id(self, name: str) -> str:
        """The id of unit ``name``, assigning one if it is new."""
        return _id_for(self.units, name)


def _id_for(table: dict[str, str], name: str) -> str:
    for key, known in table.items():
        if known == name:
            return key
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    key = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    if not key or key.isdigit() or key in table:
        key = f"{key or 'id'}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"
    table[key] = name
    return key


def device_name(path: Path) -> str:
    """The device an archive is named for: ``X_archive_20260209.series`` (or ``.parquet``, or
    ``.series.parquet``) -> ``X``."""
    return _ARCHIVE_SUFFIX.sub("", path.name)


def archives_in(data_dir: Path) -> list[Path]:
    """The archives in ``data_dir`` (files named ``*.series`` or ``*.parquet``), sorted;
    FileNotFoundError when there are none."""
    archives = sorted(p for p in data_dir.glob("*") if p.name.endswith(ARCHIVE_SUFFIXES)
                      and p.is_file())
    if not archives:
        raise FileNotFoundError(f"no *.series or *.parquet archives in {data_dir}")
    return archives


def location_id(name: str) -> int:
    """A stable 16-digit location id below 2**53 (JSON-safe), derived from the device name."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return 10**15 + digest % (8 * 10**15)


@dataclass(frozen=True)
class Series:
    """One parameter of a location: its ids and one value (or None) per location timestamp."""

    parameter_id: str
    unit_id: str
    values: list[float | None]


@dataclass(frozen=True)
class Location:
    """One device, loaded from one archive; ``timestamps`` ascend and each has some value."""

    id: int
    name: str
    description: str
    latitude: float
    longitude: float
    timestamps: list[int]
    series: list[Series]

    @classmethod
    def load(cls, path: Path, sispec: SiSpec) -> Location:
        """Read an archive, registering its parameter and unit names in ``sispec``."""
        table = pq.read_table(path)
        name = device_name(path)
        readings: dict[tuple[str, str], pa.Array] = {}
        for column in table.column_names:
            if column == "timestamp":
                continue
            parameter, dot, unit = column.rpartition(".")
            if not dot:
                log.warning("%s: column %r is not <Parameter>.<Unit>; skipped", path, column)
                continue
            values = table.column(column).combine_chunks().cast(pa.float64())
            # JSON has no NaN: a NaN is no reading, like a null.
            values = pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values)
            readings[(sispec.parameter_id(parameter), sispec.unit_id(unit))] = values
        # HydroVu has no row without a reading; the order must ascend for bisect.
        rows = pa.table(
            {
                "timestamp": table.column("timestamp"),
                **{str(i): values for i, values in enumerate(readings.values())},
            }
        )
        if readings:
            rows = rows.filter(functools.reduce(pc.or_, map(pc.is_valid, readings.values())))
        rows = rows.sort_by("timestamp")
        digest = hashlib.sha256(name.encode()).digest()
        return cls(
            id=location_id(name),
            name=name,
            description=f"{name} (fake HydroVu, replaying {path.name})",
            latitude=round(_SITE_LATITUDE + (digest[8] - 128) / 25_600, 6),
            longitude=round(_SITE_LONGITUDE + (digest[9] - 128) / 25_600, 6),
            timestamps=rows.column("timestamp").to_pylist(),
            series=[
                Series(parameter, unit, rows.column(str(i)).to_pylist())
                for i, (parameter, unit) in enumerate(readings)
            ],
        )

    def listing(self) -> dict[str, Any]:
        """This location as ``v1/locations/list`` shows it."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "gps": {"latitude": self.latitude, "longitude": self.longitude},
        }

    def page(self, start: int, last: int, span: int) -> tuple[list[dict], int | None] | None:
        """The readings of one data page, or None when nothing exists in ``[start, last]``.

        The page covers ``[t0, t0 + span)`` from the first reading ``t0 >= start``, cut at
        ``last``; the second item is where the next page starts, or None on the last page.
        """
        first = bisect.bisect_left(self.timestamps, start)
        if first == len(self.timestamps) or self.timestamps[first] > last:
            return None
        t0 = self.timestamps[first]
        end = bisect.bisect_right(self.timestamps, min(t0 + span - 1, last))
        parameters = []
        for series in self.series:
            readings = [
                {"timestamp": self.timestamps[i], "value": series.values[i]}
                for i in range(first, end)
                if series.values[i] is not None
            ]
            if readings:
                parameters.append(
                    {
                        "parameterId": series.parameter_id,
                        "unitId": series.unit_id,
                        "customParameter": False,
                        "readings": readings,
                    }
                )
        random.Random(f"{self.id}:{t0}").shuffle(parameters)
        more = end < len(self.timestamps) and self.timestamps[end] <= last
        return parameters, self.timestamps[end] if more else None


@dataclass
class Fault:
    """An injected fault: the next ``remaining`` matching API requests are answered abnormally.

    ``path_prefix`` is matched against the path below the base URL (``/v1/...``,
    ``/oauth/token``); ``fired`` counts the requests it has answered.
    """

    kind: str  # "rate_limit", "server_error", "delay" or "malformed_json"
    remaining: int
    path_prefix: str
    status: int = 0
    retry_after: int = 0
    seconds: float = 0.0
    fired: int = 0


@dataclass(frozen=True)
class RequestRecord:
    """One API request as the server saw it; ``path`` is relative to the base URL."""

    method: str
    path: str
    query: str
    status: int
    fault: str | None = None


@dataclass(frozen=True)
class _Cursor:
    path: str
    query: str
    position: int


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None


def _json(status: int, document: Any, **headers: str) -> _Response:
    body = json.dumps(document, ensure_ascii=False).encode()
    return _Response(status, body, {"Content-Type": "application/json; charset=utf-8", **headers})


def _error(status: int, message: str, **headers: str) -> _Response:
    return _json(status, {"status": status, "message": message}, **headers)


class FakeHydroVu:
    """A fake HydroVu serving the device archives in ``data_dir`` on ``127.0.0.1``.

    The server starts serving in the constructor (on a free port unless ``port`` is given) and
    stops in :meth:`close`; use it as a context manager::

        with FakeHydroVu(client_id="id", client_secret="secret") as hydrovu:
            token = requests.post(
                f"{hydrovu.base_url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("id", "secret"),
            ).json()["access_token"]

    ``data_dir`` defaults to the demo sample shipped with pondfs. ``now`` is the fake clock:
    readings after it are not served yet (default: the last reading of all archives).
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        client_id: str = "pondfs-demo",
        client_secret: str = "pondfs-demo-secret",
        *,
        page_days: float = 2,
        locations_page_size: int = 2,
        now: int | None = None,
        token_lifetime: int = 3600,
        port: int = 0,
    ) -> None:
        data_dir = Path(data_dir) if data_dir is not None else DEMO_DATA_DIR
        archives = archives_in(data_dir)
        self.sispec = SiSpec()
        loaded = [Location.load(path, self.sispec) for path in archives]
        self._locations = {loc.id: loc for loc in sorted(loaded, key=lambda loc: loc.id)}
        if len(self._locations) != len(loaded):
            raise ValueError(f"two archives in {data_dir} name the same device")
        self.client_id = client_id
        self.client_secret = client_secret
        self.page_seconds = round(page_days * 86_400)
        self.locations_page_size = locations_page_size
        self.token_lifetime = token_lifetime

        self._lock = threading.Lock()
        self._now = now if now is not None else self.last_timestamp
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._faults: list[Fault] = []
        self._fired: Counter[str] = Counter()
        self._legacy_empty_results = False
        self._recent: deque[float] = deque()  # monotonic times of API requests
        self._log: list[RequestRecord] = []
        self._closing = threading.Event()

        self._httpd = _HTTPServer(("127.0.0.1", port), self)
        self.port: int = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}{API_PREFIX}"
        self.control_url = f"http://127.0.0.1:{self.port}{CONTROL_PATH}"
        # A short poll interval makes close() prompt: shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-hydrovu-{self.port}",
        )
        self._thread.start()
        log.info(
            "fake HydroVu serving %d locations from %s at %s",
            len(self._locations),
            data_dir,
            self.base_url,
        )

    def __enter__(self) -> FakeHydroVu:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and wait for every request thread to end (delayed ones end early)."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    # -- what is served ---------------------------------------------------------------------

    @property
    def locations(self) -> dict[int, str]:
        """Location id -> device name."""
        return {loc.id: loc.name for loc in self._locations.values()}

    @property
    def last_timestamp(self) -> int:
        """The last reading of all archives."""
        return max(
            (loc.timestamps[-1] for loc in self._locations.values() if loc.timestamps), default=0
        )

    @property
    def now(self) -> int:
        """The fake clock: readings after it are not served yet."""
        with self._lock:
            return self._now

    def set_now(self, now: int) -> None:
        """Set the fake clock to ``now`` (epoch seconds)."""
        with self._lock:
            self._now = int(now)

    def advance(self, seconds: int) -> int:
        """Move the fake clock forward by ``seconds``; return the new time."""
        with self._lock:
            self._now += int(seconds)
            return self._now

    # -- faults -----------------------------------------------------------------------------

    def inject_rate_limit(
        self, count: int = 1, retry_after: int = 1, path_prefix: str = "/v1/"
    ) -> Fault:
        """Answer the next ``count`` matching requests 429 with ``Retry-After: retry_after``."""
        return self._inject(
            Fault("rate_limit", count, path_prefix, status=429, retry_after=retry_after)
        )

    def inject_server_error(
        self, count: int = 1, status: int = 500, path_prefix: str = "/v1/"
    ) -> Fault:
        """Answer the next ``count`` matching requests with ``status`` (a 5xx)."""
        return self._inject(Fault("server_error", count, path_prefix, status=status))

    def inject_delay(self, seconds: float, count: int = 1, path_prefix: str = "/v1/") -> Fault:
        """Hold the next ``count`` matching requests ``seconds`` before answering normally."""
        return self._inject(Fault("delay", count, path_prefix, seconds=seconds))

    def inject_malformed_json(self, count: int = 1, path_prefix: str = "/v1/locations/") -> Fault:
        """Truncate the body of the next ``count`` successful data pages (status stays 200)."""
        return self._inject(Fault("malformed_json", count, path_prefix))

    def expire_tokens(self) -> int:
        """Expire every token issued so far (requests get 401); return how many were live."""
        now = time.monotonic()
        with self._lock:
            live = sum(expiry > now for expiry in self._tokens.values())
            self._tokens = dict.fromkeys(self._tokens, 0.0)
        return live

    def set_legacy_empty_results(self, enabled: bool = True) -> None:
        """Answer "no data" with 200 and empty ``parameters`` (older behaviour) instead of 404."""
        with self._lock:
            self._legacy_empty_results = enabled

    def clear_faults(self) -> None:
        """Drop pending faults and the legacy switch (counts in :attr:`faults_fired` stay)."""
        with self._lock:
            self._faults.clear()
            self._legacy_empty_results = False

    @property
    def faults_fired(self) -> dict[str, int]:
        """How many requests each kind of fault answered; besides the injected kinds,
        ``expired_token`` (401 for an expired token) and ``legacy_empty_results``."""
        with self._lock:
            return dict(self._fired)

    def _inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        log.debug("injected %s", fault)
        return fault

    def _take_fault(self, path: str, kinds: tuple[str, ...]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if (
                    fault.kind in kinds
                    and fault.remaining > 0
                    and path.startswith(fault.path_prefix)
                ):
                    fault.remaining -= 1
                    fault.fired += 1
                    self._fired[fault.kind] += 1
                    return fault
        return None

    # -- request log ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """Every API request answered so far, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._log.clear()

    # -- control channel --------------------------------------------------------------------

    def control(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run one control command (what ``POST /_fake/control`` accepts) and return the state.

        ``{"action": ...}`` with ``set_now`` (``now``), ``advance`` (``seconds``),
        ``rate_limit`` (``count``, ``retry_after``, ``path_prefix``), ``server_error``
        (``count``, ``status``, ``path_prefix``), ``delay`` (``seconds``, ``count``,
        ``path_prefix``), ``malformed_json`` (``count``, ``path_prefix``), ``expire_tokens``,
        ``legacy_empty_results`` (``enabled``), ``clear_faults``, ``clear_requests`` or
        ``status``. Unknown actions or arguments raise ValueError or TypeError.
        """
        args = dict(command)
        action = args.pop("action", None)
        actions: dict[str, Callable[..., object]] = {
            "set_now": self.set_now,
            "advance": self.advance,
            "rate_limit": self.inject_rate_limit,
            "server_error": self.inject_server_error,
            "delay": self.inject_delay,
            "malformed_json": self.inject_malformed_json,
            "expire_tokens": self.expire_tokens,
            "legacy_empty_results": self.set_legacy_empty_results,
            "clear_faults": self.clear_faults,
            "clear_requests": self.clear_requests,
            "status": lambda: None,
        }
        if action not in actions:
            raise ValueError(f"unknown action {action!r}; known: {', '.join(actions)}")
        actions[action](**args)
        with self._lock:
            return {
                "now": self._now,
                "base_url": self.base_url,
                "locations": {str(i): loc.name for i, loc in self._locations.items()},
                "faults_fired": dict(self._fired),
                "pending_faults": [asdict(f) for f in self._faults if f.remaining > 0],
                "legacy_empty_results": self._legacy_empty_results,
                "requests": len(self._log),
            }

    # -- protocol ---------------------------------------------------------------------------

    def _handle(self, method: str, target: str, headers: Any, body: bytes) -> _Response:
        """Answer one HTTP request; ``headers`` is the handler's case-insensitive message."""
        url = urlsplit(target)
        if url.path == CONTROL_PATH:
            return self._handle_control(method, body)
        if not url.path.startswith(API_PREFIX + "/"):
            return _error(404, "Not Found")
        path = url.path[len(API_PREFIX) :]
        response = self._handle_api(method, path, url.query, headers, body)
        with self._lock:
            moment = time.monotonic()
            self._recent.append(moment)
            while self._recent[0] <= moment - 60:
                self._recent.popleft()
            response.headers["x-isi-requests-this-minute"] = str(len(self._recent))
            self._log.append(
                RequestRecord(method, path, url.query, response.status, response.fault)
            )
        log.debug(
            "%s %s?%s -> %d%s",
            method,
            path,
            url.query,
            response.status,
            f" ({response.fault})" if response.fault else "",
        )
        return response

    def _handle_control(self, method: str, body: bytes) -> _Response:
        try:
            command = json.loads(body or b"{}") if method == "POST" else {"action": "status"}
            if not isinstance(command, dict):
                raise ValueError("the control body must be a JSON object")
            return _json(200, self.control(command))
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))

    def _handle_api(
        self, method: str, path: str, query: str, headers: Any, body: bytes
    ) -> _Response:
        fault = self._take_fault(path, ("rate_limit", "server_error", "delay"))
        if fault is not None and fault.kind == "delay":
            self._closing.wait(fault.seconds)
        elif fault is not None and fault.kind == "rate_limit":
            response = _error(429, "Too Many Requests", **{"Retry-After": str(fault.retry_after)})
            response.fault = fault.kind
            return response
        elif fault is not None:
            response = _error(fault.status, HTTPStatus(fault.status).phrase)
            response.fault = fault.kind
            return response

        if path == "/oauth/token":
            if method != "POST":
                return _error(405, "Method Not Allowed", Allow="POST")
            return self._token(headers, body)
        if not path.startswith("/v1/"):
            return _error(404, "Not Found")
        if method != "GET":
            return _error(405, "Method Not Allowed", Allow="GET")
        denied = self._check_bearer(headers.get("Authorization", ""))
        if denied is not None:
            return denied
        if path == "/v1/sispec/friendlynames":
            return _json(200, {"parameters": self.sispec.parameters, "units": self.sispec.units})
        if path == "/v1/locations/list":
            return self._locations_page(path, query, headers)
        match = _DATA_PATH.fullmatch(path)
        if match:
            return self._data_page(int(match.group(1)), path, query, headers)
        return _error(404, "Not Found")

    def _token(self, headers: Any, body: bytes) -> _Response:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        scheme, _, credentials = headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except ValueError:
                decoded = ""
            client_id, _, secret = decoded.partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not (
            secrets.compare_digest(client_id.encode(), self.client_id.encode())
            and secrets.compare_digest(secret.encode(), self.client_secret.encode())
        ):
            return _json(
                401,
                {"error": "invalid_client", "error_description": "Bad client credentials"},
                **{"WWW-Authenticate": 'Basic realm="oauth2/client"'},
            )
        if form.get("grant_type") != "client_credentials":
            return _json(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials",
                },
            )
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime
        return _json(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.token_lifetime,
                "scope": form.get("scope", DEFAULT_SCOPE),
            },
        )

    def _check_bearer(self, authorization: str) -> _Response | None:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            expired = expiry is not None and expiry <= time.monotonic()
            if expired:
                self._fired["expired_token"] += 1
        if expiry is not None and not expired:
            return None
        description = "Access token expired" if expired else "Invalid or missing access token"
        response = _json(
            401,
            {"error": "invalid_token", "error_description": description},
            **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
        response.fault = "expired_token" if expired else None
        return response

    def _resume(self, path: str, query: str, headers: Any) -> _Cursor | _Response | None:
        """The cursor sent with a request: None for a first page, a 400 if it does not fit."""
        token = headers.get("X-ISI-Start-Page", "").strip()
        if not token:
            return None
        with self._lock:
            cursor = self._cursors.get(token)
        if cursor is None:
            return _error(400, "Invalid X-ISI-Start-Page")
        if (cursor.path, cursor.query) != (path, query):
            return _error(400, "X-ISI-Start-Page was issued for another query")
        return cursor

    def _next_page_header(self, path: str, query: str, position: int | None) -> dict[str, str]:
        if position is None:
            return {}
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._cursors[token] = _Cursor(path, query, position)
            while len(self._cursors) > _CURSORS_KEPT:
                self._cursors.popitem(last=False)
        return {"X-ISI-Next-Page": token}

    def _locations_page(self, path: str, query: str, headers: Any) -> _Response:
        cursor = self._resume(path, query, headers)
        if isinstance(cursor, _Response):
            return cursor
        first = cursor.position if cursor else 0
        everything = list(self._locations.values())
        page = everything[first : first + self.locations_page_size]
        following = first + len(page)
        return _json(
            200,
            [loc.listing() for loc in page],
            **self._next_page_header(
                path, query, following if following < len(everything) else None
            ),
        )

    def _data_page(self, location_id: int, path: str, query: str, headers: Any) -> _Response:
        location = self._locations.get(location_id)
        if location is None:
            return _error(404, f"Location {location_id} not found")
        params = parse_qs(query, keep_blank_values=True)
        try:
            start = int(params["startTime"][0])
            end = int(params["endTime"][0]) if "endTime" in params else None
        except (KeyError, ValueError):
            return _error(400, "startTime (and endTime, if given) must be epoch seconds")
        cursor = self._resume(path, query, headers)
        if isinstance(cursor, _Response):
            return cursor
        with self._lock:
            last = self._now if end is None else min(end, self._now)
            legacy = self._legacy_empty_results
        page = location.page(cursor.position if cursor else start, last, self.page_seconds)
        if page is None and legacy:
            with self._lock:
                self._fired["legacy_empty_results"] += 1
            response = _json(200, {"locationId": location_id, "parameters": []})
            response.fault = "legacy_empty_results"
            return response
        if page is None:
            return _error(404, NO_RESULTS_MESSAGE)
        parameters, following = page
        response = _json(
            200,
            {"locationId": location_id, "parameters": parameters},
            **self._next_page_header(path, query, following),
        )
        if self._take_fault(path, ("malformed_json",)) is not None:
            response.body = response.body[: len(response.body) // 2]
            response.fault = "malformed_json"
        return response


class _HTTPServer(ThreadingHTTPServer):
    # Request threads are joined on close, so none outlives the FakeHydroVu.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], fake: FakeHydroVu) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("fake HydroVu: error while serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no idle keep-alive thread blocks close().
    protocol_version = "HTTP/1.0"
    server_version = "FakeHydroVu/1.0"
    sys_version = ""
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        response = self.server.fake._handle(self.command, self.path, self.headers, body)
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up, typically after its timeout during an injected delay.
            log.debug("client left before the answer to %s %s", self.command, self.path)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def main(argv: list[str] | None = None) -> int:
    """Serve from the command line until SIGINT or SIGTERM; print the base URL first."""
    parser = argparse.ArgumentParser(
        prog="python -m pondfs.testing.fake_hydrovu",
        description="Serve Parquet device archives (*.series or *.parquet) as a fake HydroVu "
        "API on 127.0.0.1. "
        "The first line on stdout is the base URL; test controls take JSON at "
        f"POST {CONTROL_PATH}.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEMO_DATA_DIR,
        help="directory of *.series or *.parquet archives (default: the pondfs demo sample)",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument("--client-id", default="pondfs-demo")
    parser.add_argument("--client-secret", default="pondfs-demo-secret")
    parser.add_argument(
        "--now",
        type=int,
        default=None,
        help="fake clock, epoch seconds: later readings are held back",
    )
    parser.add_argument("--page-days", type=float, default=2)
    parser.add_argument("--locations-page-size", type=int, default=2)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        fake = FakeHydroVu(
            args.data,
            args.client_id,
            args.client_secret,
            page_days=args.page_days,
            locations_page_size=args.locations_page_size,
            now=args.now,
            port=args.port,
        )
    except (OSError, ValueError) as exc:
        print(f"fake_hydrovu: {exc}", file=sys.stderr)
        return 2
    with fake:
        print(fake.base_url, flush=True)
        while not stop.wait(0.2):
            pass
        log.info("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
