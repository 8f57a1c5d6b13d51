"""Private instances of the real servers the tests talk to, on free loopback ports.

Each server runs from its Debian package binary in a temporary directory and is stopped (by
the PID we started) when its fixture ends. ``make test`` installs the packages when missing.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.sim.ports import free_port

BINARIES = {"mosquitto": "/usr/sbin/mosquitto", "influxdb": "/usr/bin/influxd",
            "victoria-metrics": "/usr/bin/victoria-metrics", "socat": "/usr/bin/socat"}


def require_binary(package: str) -> str:
    """The path of a server binary, or a clear instruction when its package is missing."""
    path = BINARIES[package]
    if os.access(path, os.X_OK):
        return path
    found = shutil.which(Path(path).name)
    if found:
        return found
    raise RuntimeError(f"{path} not found: install the Debian package with "
                       f"'sudo apt-get install -y {package}' (make test does this as root)")


@dataclass
class Server:
    """A started server process and where it listens."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    argv: list[str]
    log_path: Path

    @property
    def url(self) -> str:
        """http://127.0.0.1:port"""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Terminate the process we started and wait for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def start_again(self, ready: Callable[[Server], bool], timeout_s: float = 20) -> None:
        """Restart the same server on the same port and data directory."""
        self.stop()
        self.proc = _spawn(self.argv, self.log_path)
        _wait_ready(self, ready, timeout_s)


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    try:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    finally:
        log.close()


def _wait_ready(server: Server, ready: Callable[[Server], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}: "
                               f"{server.log_path.read_text(errors='replace')[-2000:]}")
        if ready(server):
            return
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.name} not ready on port {server.port} after {timeout_s}s")


def _port_open(server: Server) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", server.port)) == 0


def _http_ok(path: str) -> Callable[[Server], bool]:
    def check(server: Server) -> bool:
        try:
            with urllib.request.urlopen(server.url + path, timeout=0.5) as r:
                return bool(200 <= r.status < 300)
        except (urllib.error.URLError, OSError):
            return False
    return check


@contextlib.contextmanager
def _serve(name: str, argv: list[str], workdir: Path, port: int,
           ready: Callable[[Server], bool], timeout_s: float = 30) -> Iterator[Server]:
    """Start a server, wait until it answers, and stop it (by its PID) on exit."""
    log_path = workdir / f"{name}.log"
    server = Server(name, port, _spawn(argv, log_path), workdir, argv, log_path)
    try:
        _wait_ready(server, ready, timeout_s)
        yield server
    finally:
        server.stop()


MOSQUITTO_READY = _port_open
INFLUX_READY = _http_ok("/ping")
VM_READY = _http_ok("/health")


@contextlib.contextmanager
def mosquitto(workdir: Path, extra_conf: str = "") -> Iterator[Server]:
    """A private Mosquitto with the queue limits the gateway needs (see config/mosquitto)."""
    binary = require_binary("mosquitto")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\n"
        f"persistence true\npersistence_location {workdir}/\n"
        "autosave_interval 1\n"
        "max_queued_messages 1000000\nmax_queued_bytes 0\nmax_inflight_messages 10000\n"
        "sys_interval 1\n"
        f"log_dest file {workdir}/mosquitto-broker.log\n"
        f"listener {port} 127.0.0.1\nallow_anonymous true\n{extra_conf}")
    with _serve("mosquitto", [binary, "-c", str(conf)], workdir, port, MOSQUITTO_READY) as server:
        yield server


@contextlib.contextmanager
def influxdb(workdir: Path) -> Iterator[Server]:
    """A private InfluxDB 1.6.7 (v1 API)."""
    binary = require_binary("influxdb")
    workdir.mkdir(parents=True, exist_ok=True)
    port, rpc = free_port(), free_port()
    conf = workdir / "influxdb.conf"
    conf.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
        f'[meta]\n  dir = "{workdir}/meta"\n'
        f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
        '  query-log-enabled = false\n  max-values-per-tag = 0\n  max-series-per-database = 0\n'
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        '  max-body-size = 0\n'
        '[monitor]\n  store-enabled = false\n'
        '[continuous_queries]\n  enabled = false\n')
    with _serve("influxd", [binary, "-config", str(conf)], workdir, port, INFLUX_READY) as server:
        yield server


@contextlib.contextmanager
def victoria_metrics(workdir: Path) -> Iterator[Server]:
    """A private VictoriaMetrics: a real server of the InfluxDB v2 ``/api/v2/write`` API."""
    binary = require_binary("victoria-metrics")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [binary, f"-storageDataPath={workdir}/data", f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y", "-search.disableCache", "-loggerLevel=ERROR"]
    with _serve("victoria-metrics", argv, workdir, port, VM_READY) as server:
        yield server


def influx_query(server: Server, db: str, q: str) -> list[dict[str, Any]]:
    """Run an InfluxQL query; the series of the first statement (raises on an error)."""
    qs = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
    with urllib.request.urlopen(f"{server.url}/query?{qs}", timeout=10) as r:
        body = json.loads(r.read())
    result = body["results"][0]
    if "error" in result:
        raise RuntimeError(result["error"])
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def stored_readings(server: Server, db: str, where: str = "") -> int:
    """Rows of ``reading`` (a value, or only a quality when there is none): quality is
    written only when it changes (gateway.influx.schema), so ``count(quality)`` cannot count
    them. Reads every row: for the small sets of tests."""
    series = influx_query(server, db, f'SELECT "value", "quality" FROM reading {where}')
    return sum(len(s["values"]) for s in series)


def influx_create_db(server: Server, db: str) -> None:
    """CREATE DATABASE through the HTTP API."""
    data = urllib.parse.urlencode({"q": f'CREATE DATABASE "{db}"'}).encode()
    with urllib.request.urlopen(f"{server.url}/query", data=data, timeout=10) as r:
        r.read()


@dataclass
class TlsBroker:
    """A private Mosquitto with a TLS listener and password authentication."""

    server: Server
    tls_port: int
    ca: Path
    username: str
    password: str


def _run(argv: list[str], cwd: Path) -> None:
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def mosquitto_tls(workdir: Path) -> Iterator[TlsBroker]:
    """Mosquitto with a self-made CA, a server certificate for 127.0.0.1 and one user."""
    workdir.mkdir(parents=True, exist_ok=True)
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
          "-subj", "/CN=hazgw-test-ca", "-keyout", "ca.key", "-out", "ca.crt"], workdir)
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
          "-keyout", "server.key", "-out", "server.csr"], workdir)
    (workdir / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
          "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt"],
         workdir)
    _run(["mosquitto_passwd", "-c", "-b", str(workdir / "passwd"), "edge", "s3cret-pw"],
         workdir)
    (workdir / "passwd").chmod(0o644)
    tls_port = free_port()
    extra = (f"password_file {workdir}/passwd\nallow_anonymous false\n"
             f"listener {tls_port} 127.0.0.1\ncafile {workdir}/ca.crt\n"
             f"certfile {workdir}/server.crt\nkeyfile {workdir}/server.key\n")
    with mosquitto(workdir / "broker", extra_conf=extra) as server:
        yield TlsBroker(server, tls_port, workdir / "ca.crt", "edge", "s3cret-pw")
