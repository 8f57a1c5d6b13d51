"""``hazgw grafana build`` and ``hazgw grafana push``: the dashboards of
``gateway.dashboards.build`` written as files for provisioning, or uploaded to a running
Grafana through grafana-client (into one folder, overwriting by uid, so a push is repeatable)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaException

from gateway.dashboards.build import all_dashboards

FOLDER_UID = "hazgw"
FOLDER_TITLE = "Major hazard monitoring"


def render(dashboard: dict[str, Any]) -> str:
    """The file text of a dashboard (stable: sorted keys, two-space indent)."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def build(out: Path) -> list[Path]:
    """Write every dashboard into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, d in all_dashboards().items():
        (out / name).write_text(render(d))
        written.append(out / name)
    return written


class PushError(Exception):
    """Grafana could not be reached or refused; the message says which and why."""


def push(url: str, credential: str | tuple[str, str] | None, folder: Path,
         timeout_s: float = 10.0) -> list[str]:
    """Upload every dashboard file in ``folder`` to the Grafana at ``url`` (token, or user
    and password); returns the uids pushed."""
    files = sorted(folder.glob("*.json"))
    if not files:
        raise PushError(f"no dashboards in {folder}")
    api = GrafanaApi.from_url(url, credential, timeout=timeout_s)
    uids = []
    try:
        try:
            api.folder.get_folder(FOLDER_UID)
        except GrafanaException as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        for f in files:
            d = json.loads(f.read_text())
            d.pop("id", None)         # Grafana matches by uid; a stale id would conflict
            api.dashboard.update_dashboard({"dashboard": d, "folderUid": FOLDER_UID,
                                            "overwrite": True,
                                            "message": f"hazgw grafana push ({f.name})"})
            uids.append(d["uid"])
    except GrafanaException as exc:
        what = {401: "refused the credentials", 403: "does not allow this user to write "
                "dashboards"}.get(exc.status_code, f"answered {exc.status_code}")
        raise PushError(f"Grafana at {url} {what}: {exc.message}") from None
    except OSError as exc:
        raise PushError(f"cannot reach Grafana at {url}: {exc}") from None
    finally:
        api.client.s.close()    # the HTTP session keeps a watcher thread until closed
    return uids
