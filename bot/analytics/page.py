"""Analytics API for the console's analytics page (/console/analytics.html).

Agents must be logged in (same session cookie as the console). The report is read from
``request.app.state.analytics_engine``, the SQLAlchemy engine of the bot's database, which
the application sets when it is built::

    app.state.analytics_engine = engine  # the engine given to Queue / ChatLog

and these routes are added to the application's routes (``*page.routes``).
Each endpoint's docstring carries its OpenAPI description (served at /openapi.json).
"""

from __future__ import annotations

import re

import datetime as dt
import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.analytics.export import write_csv
from bot.analytics.report import JST, AnalyticsReport, build_report, last_days
from bot.server.auth import client_address, current_agent
from bot.server.http import download

DEFAULT_DAYS = 30
MAX_DAYS = 366


def _days(request: Request) -> int:
    raw = request.query_params.get("days", str(DEFAULT_DAYS))
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= MAX_DAYS:  # not isdigit(): "²"
        raise HTTPException(422, f"days は 1〜{MAX_DAYS} の整数で指定してください。")
    return int(raw)


def _engine(request: Request) -> Any:
    engine = getattr(request.app.state, "analytics_engine", None)
    if engine is None:
        raise HTTPException(503, "分析用のデータベースが設定されていません。管理者に連絡してください。")
    return engine


async def _report(request: Request) -> tuple[AnalyticsReport, int]:
    username = current_agent(request)
    request.state.agent = username
    days = _days(request)
    engine = _engine(request)
    since, until = last_days(days, JST)
    report = await run_in_threadpool(build_report, engine, since, until, JST)
    return report, days


async def analytics_json(request: Request) -> JSONResponse:
    """Editors' analytics.
    ---
    summary: Volume, handoff rates, intents, 「いいえ」 feedback and grouped unanswered questions
    parameters: [{name: days, in: query, schema: {type: integer, minimum: 1, maximum: 366, default: 30},
      description: "Calendar days in Japan time, today included"}]
    responses:
      200: {description: "{days, report: {since, until, timezone, generated_at, totals, days, handoff_reasons,
        handoff_faqs, intents, feedback, unanswered, unanswered_not_grouped, line?}} (docs/analytics.md;
        line: LINE push messages {month, this_month, warning, over, months}, only with the LINE channel on)"}
      401: {description: Not logged in}
      422: {description: Bad days}
      503: {description: No analytics database configured}
    """
    report, days = await _report(request)
    body = report.as_dict()
    line = getattr(request.app.state, "line", None)
    if line is not None and line.push_counter is not None:  # LINE push messages are billed (docs/line.md)
        body["line"] = await run_in_threadpool(line.push_counter.summary)
    return JSONResponse({"days": days, "report": body})


def _zip_csv(report: AnalyticsReport) -> bytes:
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in write_csv(report, Path(folder)):
            archive.write(path, arcname=path.name)
    return buffer.getvalue()


async def analytics_csv_zip(request: Request) -> Response:
    """Editors' analytics as CSV files.
    ---
    summary: The analytics tables as CSV files (UTF-8 with BOM, Japanese headers) in one ZIP
    parameters: [{name: days, in: query, schema: {type: integer, minimum: 1, maximum: 366, default: 30}}]
    responses:
      200: {description: "application/zip: daily, handoff_reasons, handoff_faqs, intents, feedback, unanswered CSV"}
      401: {description: Not logged in}
      422: {description: Bad days}
      503: {description: No analytics database configured}
    """
    report, days = await _report(request)
    content = await run_in_threadpool(_zip_csv, report)
    services = getattr(request.app.state, "services", None)
    if services is not None:  # the export goes into the audit log (bot/store/audit.py)
        await run_in_threadpool(services.stores.audit.write, "export.analytics", request.state.agent, None,
                                {"days": days}, client_address(request))
    return download(content, "application/zip", f"analytics-{dt.datetime.now(JST):%Y%m%d}-{days}d.zip")


routes = [
    Route("/api/analytics", analytics_json, methods=["GET"]),
    Route("/api/analytics.csv.zip", analytics_csv_zip, methods=["GET"]),
]
