"""``hazgw grafana push`` through grafana-client. No Grafana server is packaged for this
machine (not in Debian's archive nor on PyPI), so a small HTTP server that answers like
Grafana's folder and dashboard API stands in, and records what the push sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.dashboards.grafana import FOLDER_UID, PushError, build, push
from gateway.sim.ports import free_port

ROOT = Path(__file__).resolve().parents[3]


class FakeGrafana(ThreadingHTTPServer):
    def __init__(self, port: int, token: str) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.token = token
        self.folders: set[str] = set()
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []


class Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self._reply(401, {"message": "invalid API key"})
            return False
        return True

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path))
        if not self._authorised():
            return
        uid = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/api/folders/") and uid in self.server.folders:
            self._reply(200, {"uid": uid, "title": "x"})
        else:
            self._reply(404, {"message": "folder not found"})

    def do_POST(self) -> None:
        self.server.requests.append(("POST", self.path))
        if not self._authorised():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/folders":
            self.server.folders.add(body["uid"])
            self._reply(200, {"uid": body["uid"], "title": body["title"]})
        elif self.path == "/api/dashboards/db":
            if body.get("folderUid") not in self.server.folders:
                self._reply(400, {"message": "folder not found"})
                return
            self.server.dashboards[body["dashboard"]["uid"]] = body
            self._reply(200, {"status": "success", "uid": body["dashboard"]["uid"]})
        else:
            self._reply(404, {"message": "not found"})


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana(free_port(), "s3cret")
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server
    server.shutdown()
    server.server_close()
    t.join(timeout=5)


def test_push_creates_the_folder_once_and_overwrites_by_uid(grafana: FakeGrafana) -> None:
    url = f"http://127.0.0.1:{grafana.server_port}"
    folder = ROOT / "grafana" / "dashboards"
    uids = push(url, "s3cret", folder)
    assert sorted(uids) == sorted(grafana.dashboards) and len(uids) == 7
    assert grafana.folders == {FOLDER_UID}
    for body in grafana.dashboards.values():
        assert body["overwrite"] is True and body["folderUid"] == FOLDER_UID
        assert "id" not in body["dashboard"]
        assert body["dashboard"]["panels"]
    push(url, "s3cret", folder)                  # again: the folder exists, nothing doubles
    assert sum(1 for m, p in grafana.requests if (m, p) == ("POST", "/api/folders")) == 1
    assert len(grafana.dashboards) == 7


def test_wrong_token_and_no_server_give_clear_errors(grafana: FakeGrafana,
                                                     tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{grafana.server_port}"
    with pytest.raises(PushError, match="refused the credentials"):
        push(url, "wrong", ROOT / "grafana" / "dashboards")
    with pytest.raises(PushError, match="cannot reach Grafana"):
        push(f"http://127.0.0.1:{free_port()}", "s3cret", ROOT / "grafana" / "dashboards")
    with pytest.raises(PushError, match="no dashboards"):
        push(url, "s3cret", tmp_path)
    assert grafana.dashboards == {}


def test_cli_build_then_push(grafana: FakeGrafana, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grafana", "build", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in build(tmp_path / "again"))
    monkeypatch.setenv("HAZGW_GRAFANA_TOKEN", "s3cret")
    url = f"http://127.0.0.1:{grafana.server_port}"
    assert main(["grafana", "push", "--url", url, "--dir", str(tmp_path)]) == 0
    assert "pushed 7 dashboards" in capsys.readouterr().out
    monkeypatch.setenv("HAZGW_GRAFANA_TOKEN", "nope")
    assert main(["grafana", "push", "--url", url, "--dir", str(tmp_path)]) == 2
    assert "refused the credentials" in capsys.readouterr().err
