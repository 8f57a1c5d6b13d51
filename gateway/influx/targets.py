"""InfluxDB targets for line protocol: the v1 ``/write`` API, the v2 ``/api/v2/write`` API and a
local file; failures classified as permanent, retryable or throttled (Telegraf's influxdb_v2)."""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import aiohttp

from gateway.settings import InfluxSettings

log = logging.getLogger(__name__)


class WriteError(Exception):
    """A write that did not succeed; subclasses say whether to try again."""


class PermanentError(WriteError):
    """The server refused the data itself (bad line, no permission). ``rejected`` is how
    many of the batch's lines it refused when it says (a partial write stored the rest);
    None: all of them."""

    def __init__(self, message: str, rejected: int | None = None) -> None:
        super().__init__(message)
        self.rejected = rejected


class RetryableError(WriteError):
    """The server or network failed; the same write may succeed later."""


class MissingDatabaseError(RetryableError):
    """The database does not exist (yet): data waits, it is never dropped for this."""


class ThrottledError(RetryableError):
    """The server asked us to slow down, possibly saying for how long."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LineSink(Protocol):
    """Writes one body of line protocol (ms precision) somewhere durable."""

    async def write(self, body: bytes) -> None:
        """Write the lines or raise a WriteError subclass."""

    async def close(self) -> None:
        """Release connections."""


def classify(status: int, text: str, retry_after: str | None) -> WriteError:
    """Map an HTTP answer of an InfluxDB write to the kind of failure it is."""
    msg = f"HTTP {status}: {text.strip()[:300]}"
    if status in (429, 503):
        try:
            delay = float(retry_after) if retry_after else None
        except ValueError:
            delay = None
        return ThrottledError(msg, delay)
    if status >= 500 or status == 408:
        return RetryableError(msg)
    if status == 404 and "database not found" in text:
        return MissingDatabaseError(msg)
    dropped = re.search(r"dropped=(\d+)", text) if "partial write" in text else None
    return PermanentError(msg, int(dropped.group(1)) if dropped else None)


class HttpSink:
    """POSTs line protocol over one aiohttp session (v1 ``/write`` or v2 ``/api/v2/write``)."""

    def __init__(self, url: str, params: dict[str, str], headers: dict[str, str],
                 gzip_body: bool, timeout_s: float,
                 auth: aiohttp.BasicAuth | None = None, create_url: str | None = None,
                 ) -> None:
        self._url, self._params, self._auth = url, params, auth
        # v1: where to CREATE DATABASE when a write finds it missing (None: never)
        self._create_url = create_url
        self._create_said = False
        self._headers = {"Content-Type": "text/plain; charset=utf-8", **headers}
        if gzip_body:
            self._headers["Content-Encoding"] = "gzip"
        self._gzip = gzip_body
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def write(self, body: bytes) -> None:
        """POST the body; 204 is success, anything else is classified."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        data = gzip.compress(body, compresslevel=1) if self._gzip else body
        try:
            async with self._session.post(self._url, params=self._params, data=data,
                                          headers=self._headers, auth=self._auth) as resp:
                if resp.status in (200, 204):
                    return
                error = classify(resp.status, await resp.text(), resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from exc
        if isinstance(error, MissingDatabaseError):
            await self._create_database()
        raise error

    async def _create_database(self) -> None:
        """Create the missing v1 database if the credentials allow; the write is retried
        either way (after creating, it succeeds; otherwise data waits in the spool)."""
        if self._create_url is None or self._session is None:
            return
        db = self._params["db"]
        q = 'CREATE DATABASE "' + db.replace('"', '\\"') + '"'
        try:
            async with self._session.post(self._create_url, data={"q": q},
                                          auth=self._auth) as resp:
                text = await resp.text()
                ok = resp.status == 200 and '"error"' not in text
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            ok, text = False, str(exc)
        if ok:
            log.warning("influx: database %r did not exist: created it", db)
            self._create_said = False
        elif not self._create_said:
            self._create_said = True
            log.error("influx: database %r does not exist and cannot be created (%s): data "
                      "waits in the spool; retrying", db, text.strip()[:200])

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def influx_v1(s: InfluxSettings) -> HttpSink:
    """A sink for InfluxDB 1.x's ``/write`` (db, rp, user/password)."""
    params = {"db": s.database, "precision": "ms"}
    if s.retention_policy:
        params["rp"] = s.retention_policy
    auth = None
    if s.username:
        auth = aiohttp.BasicAuth(s.username, s.password.get_secret_value() if s.password else "")
    base = s.url.rstrip("/")
    return HttpSink(base + "/write", params, {}, s.gzip, s.timeout_s, auth,
                    create_url=base + "/query")


class InfluxV2Sink:
    """Writes through influxdb-client's async API (InfluxDB 2.x, 3.x, 1.8+, Cloud)."""

    def __init__(self, s: InfluxSettings) -> None:
        self._s = s
        self._client: object | None = None

    async def write(self, body: bytes) -> None:
        """Write with the official client and classify its exceptions."""
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        if self._client is None:
            token = self._s.token.get_secret_value() if self._s.token else ""
            self._client = InfluxDBClientAsync(
                url=self._s.url, token=token, org=self._s.org, enable_gzip=self._s.gzip,
                timeout=int(self._s.timeout_s * 1000))
        api = self._client.write_api()  # type: ignore[attr-defined]
        try:
            await api.write(bucket=self._s.bucket, org=self._s.org, record=body,
                            write_precision=WritePrecision.MS)
        except ApiException as exc:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            raise classify(int(exc.status or 0), str(exc.body or exc.reason), retry_after) \
                from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close the client's session."""
        if self._client is not None:
            await self._client.close()  # type: ignore[attr-defined]
            self._client = None


class FileSink:
    """Appends line protocol to a local file: the embedded default of the demo."""

    def __init__(self, path: Path) -> None:
        self._path = path

    async def write(self, body: bytes) -> None:
        """Append the lines (small, local: done inline)."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("ab") as f:
                f.write(body)
        except OSError as exc:
            raise RetryableError(f"cannot append to {self._path}: {exc}") from exc

    async def close(self) -> None:
        """Nothing to release."""


class NullSink:
    """Discards lines: for running the core without a database (benchmarks of the core)."""

    async def write(self, body: bytes) -> None:
        """Drop the lines."""

    async def close(self) -> None:
        """Nothing to release."""


SINKS: dict[str, Callable[[InfluxSettings], LineSink]] = {
    "v1": influx_v1,
    "v2": InfluxV2Sink,
    "file": lambda s: FileSink(s.path),
    "none": lambda s: NullSink(),
}


def make_sink(s: InfluxSettings) -> LineSink:
    """The sink the settings name."""
    return SINKS[s.kind](s)
