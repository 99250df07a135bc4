"""Analytics API for the console's analytics page (/console/analytics.html).

The HTTP side of :mod:`bot.analytics` (which reads and writes reports and speaks no HTTP).
Every agent who is logged in (same session cookie as the console) reads the report; the CSV
export is for admins only (the desk's admin check: 403 with 「この操作は管理者だけが行えます。…」),
and the report tells the page whether to offer it (``can_export``). The report is read from
``request.app.state.analytics_engine``, the SQLAlchemy engine of the bot's database, which
the application sets when it is built::

    app.state.analytics_engine = engine  # the engine given to Queue / ChatLog

and these routes are added to the application's routes (``*analytics_api.routes``).
Each endpoint's docstring carries its OpenAPI description (served at /openapi.json).
"""

from __future__ import annotations

import datetime as dt
import io
import re
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
from bot.server.desk_api import _admin, is_admin
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
      200: {description: "{days, can_export, report: {since, until, timezone, generated_at, totals, days, weeks,
        handoff_reasons, handoff_faqs, intents, feedback, unanswered, unanswered_not_grouped, kpis, line?}}
        (docs/analytics.md; weeks: Monday to Sunday in Japan time, clipped to the period; can_export: the
        agent is an admin and may download the CSV files; line: LINE push messages
        {month, this_month, warning, over, months}, only with the LINE channel on)"}
      401: {description: Not logged in}
      422: {description: Bad days}
      503: {description: No analytics database configured}
    """
    report, days = await _report(request)
    body = report.as_dict()
    line = getattr(request.app.state, "line", None)
    if line is not None and line.push_counter is not None:  # LINE push messages are billed (docs/line.md)
        body["line"] = await run_in_threadpool(line.push_counter.summary)
    can_export = await is_admin(request, request.state.agent)
    return JSONResponse({"days": days, "can_export": can_export, "report": body})


def _zip_csv(report: AnalyticsReport) -> bytes:
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in write_csv(report, Path(folder)):
            archive.write(path, arcname=path.name)
    return buffer.getvalue()


async def analytics_csv_zip(request: Request) -> Response:
    """Editors' analytics as CSV files (admins only).
    ---
    summary: The analytics tables as CSV files (UTF-8 with BOM, Japanese headers) in one ZIP
    parameters: [{name: days, in: query, schema: {type: integer, minimum: 1, maximum: 366, default: 30}}]
    responses:
      200: {description: "application/zip: daily, weekly, handoff_reasons, handoff_faqs, intents, feedback,
        unanswered, csat, csat_categories, csat_comments, kpi_summary, kpi_weekly, kpi_daily, kpi_agents CSV"}
      401: {description: Not logged in}
      403: {description: Not an admin (Japanese message)}
      422: {description: Bad days}
      503: {description: No analytics database configured}
    """
    await _admin(request, state_change=False)  # before any work: agents read the page, admins export
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
