"""Who reads analytics and who exports them (bot/server/analytics_api.py): every agent reads the
page's API; only admins download the CSV files (the desk's admin check, 403 in Japanese).

One bot server on SQLite with a scripted Rasa (tests/test_desk_api.py's admin sato and agent suzuki).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from bot import wording
from bot.analytics.export import CSV_FILES
from bot.server.app import Services
from bot.store.audit import AuditFilter
from test_desk_api import admin_and_agent

EXPORT = "/api/analytics.csv.zip?days=7"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, Services]]:
    with admin_and_agent(tmp_path / "bot.db") as clients:
        yield clients


def test_agents_read_admins_export(server: tuple[TestClient, TestClient, Services]) -> None:
    admin, agent, services = server
    mine = agent.get("/api/analytics?days=7")
    assert mine.status_code == 200 and mine.json()["can_export"] is False
    report = mine.json()["report"]
    assert len(report["days"]) == 7 and 1 <= len(report["weeks"]) <= 2  # seven days touch one or two weeks
    assert report["kpis"]["resolution"]["conversations"] == 0 and "resolution" in report["kpis"]["labels"]
    refused = agent.get(EXPORT)
    assert refused.status_code == 403 and refused.json()["error"] == wording.DESK_TEXT["admin_only"]

    assert admin.get("/api/analytics?days=7").json()["can_export"] is True
    archive = admin.get(EXPORT)
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as files:
        assert sorted(files.namelist()) == sorted(CSV_FILES.values()) and len(CSV_FILES) == 14
    exports, _ = services.stores.audit.page(AuditFilter(action="export.analytics"))
    assert [(e.actor, e.detail) for e in exports] == [("sato", {"days": 7})]  # the refusal wrote nothing

    # A supervisor is no admin either; a bad period is refused after the role, like the audit CSV.
    assert admin.post("/api/admin/agents/suzuki", json={"role": "supervisor"}).status_code == 200
    assert agent.get(EXPORT).status_code == 403
    assert agent.get("/api/analytics.csv.zip?days=0").status_code == 403
    assert admin.get("/api/analytics.csv.zip?days=0").status_code == 422
    with TestClient(admin.app) as anonymous:
        assert anonymous.get(EXPORT).status_code == 401
        assert anonymous.get("/api/analytics?days=7").status_code == 401
