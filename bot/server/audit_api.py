"""Admin API of the audit log (監査ログ): list with filters a page at a time, and a CSV export.

Admins only (agents and supervisors get 403 with a Japanese message, the desk's admin
check). There is no endpoint that writes, changes or deletes a line: the log is written by
the actions themselves (bot/store/audit.py). The CSV is UTF-8 with a BOM and Japanese
headers, every text defused against spreadsheet formulas like the analytics export; the
export itself goes into the log.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.analytics.report import JST
from bot.knowledge.spreadsheet.common import defuse_formula
from bot.server.auth import client_address
from bot.server.desk_api import _admin
from bot.server.http import download, int_param
from bot.store.audit import ACTIONS, MAX_PAGE, PAGE, AuditFilter, AuditLog, entry_json
from bot.store.models import AuditEntry, as_utc

CSV_HEADER = ("日時（日本時間）", "操作した人", "操作", "操作コード", "対象", "詳細", "接続元")
MAX_FILTER_CHARS = 100


def _audit(request: Request) -> AuditLog:
    return request.app.state.services.stores.audit


def _date(request: Request, name: str) -> dt.date | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise HTTPException(422, f"「{name}」は 2026-11-24 の形式の日付で指定してください。") from None


def _filter(request: Request) -> AuditFilter:
    """The filter of the query: ``actor``, ``action``, ``since`` / ``until`` (dates in Japan time, both included).

    Raises:
        HTTPException: 422 for an unknown action, a bad date or a period that ends before it starts.
    """
    actor = request.query_params.get("actor", "").strip()[:MAX_FILTER_CHARS] or None
    action = request.query_params.get("action", "").strip() or None
    if action is not None and action not in ACTIONS:
        raise HTTPException(422, "「action」には一覧にある操作を指定してください。")
    since, until = _date(request, "since"), _date(request, "until")
    if since and until and until < since:
        raise HTTPException(422, "終わりの日付が始まりの日付より前です。")

    def start_of(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), JST)

    return AuditFilter(actor=actor, action=action, since=start_of(since) if since else None,
                       until=start_of(until + dt.timedelta(days=1)) if until else None)


async def list_audit(request: Request) -> JSONResponse:
    """The audit log, newest first (admins only).
    ---
    summary: Who did what and when; filter by actor, action and period, a page at a time
    parameters:
      - {name: actor, in: query, schema: {type: string}, description: "a user name, or cli:<os user>"}
      - {name: action, in: query, schema: {type: string}, description: "an action code (see actions in the answer)"}
      - {name: since, in: query, schema: {type: string, format: date}, description: "first day (Japan time)"}
      - {name: until, in: query, schema: {type: string, format: date}, description: "last day (Japan time), included"}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200, default: 50}}
      - {name: offset, in: query, schema: {type: integer, minimum: 0, default: 0}}
    responses:
      200: {description: "{entries: [{id, at, actor, action, action_label, target, detail, address}], total, has_more, next_offset, actions, actors}"}
      401: {description: Not logged in}
      403: {description: Not an admin}
      422: {description: "Unknown action, bad date, bad limit/offset"}
    """
    await _admin(request, state_change=False)
    where = _filter(request)
    limit = int_param(request, "limit", PAGE, 1, MAX_PAGE)
    offset = int_param(request, "offset", 0, 0, 10**9)
    audit = _audit(request)
    rows, total = await run_in_threadpool(audit.page, where, limit, offset)
    actors = await run_in_threadpool(audit.actors)
    more = offset + len(rows) < total
    return JSONResponse({"entries": [entry_json(r) for r in rows], "total": total, "has_more": more,
                         "next_offset": offset + limit if more else None, "actions": ACTIONS, "actors": actors})


def _csv_row(row: AuditEntry) -> list[str]:
    cells = [f"{as_utc(row.at).astimezone(JST):%Y-%m-%d %H:%M:%S}", row.actor or "（システム）",
             ACTIONS.get(str(row.action), str(row.action)), str(row.action), row.target or "",
             json.dumps(row.detail, ensure_ascii=False, sort_keys=True) if row.detail else "", row.address or ""]
    return [defuse_formula(cell) for cell in cells]


def _csv(audit: AuditLog, where: AuditFilter) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    for row in audit.export(where):
        writer.writerow(_csv_row(row))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


async def export_audit(request: Request) -> Response:
    """The audit log as CSV (admins only; the export is logged too).
    ---
    summary: The filtered audit log as one CSV file (UTF-8 with BOM, Japanese headers, formulas defused)
    parameters:
      - {name: actor, in: query, schema: {type: string}}
      - {name: action, in: query, schema: {type: string}}
      - {name: since, in: query, schema: {type: string, format: date}}
      - {name: until, in: query, schema: {type: string, format: date}}
    responses:
      200: {description: "text/csv; newest first, at most 100,000 lines"}
      401: {description: Not logged in}
      403: {description: Not an admin}
      422: {description: "Unknown action or bad date"}
    """
    admin = await _admin(request, state_change=False)
    where = _filter(request)
    audit = _audit(request)
    detail: dict[str, Any] = {name: request.query_params[name] for name in ("actor", "action", "since", "until")
                              if request.query_params.get(name)}
    await run_in_threadpool(audit.write, "export.audit", admin, None, detail, client_address(request))
    content = await run_in_threadpool(_csv, audit, where)
    return download(content, "text/csv; charset=utf-8", f"audit-log-{dt.datetime.now(JST):%Y%m%d-%H%M}.csv")


routes = [
    Route("/api/admin/audit", list_audit, methods=["GET"]),
    Route("/api/admin/audit.csv", export_audit, methods=["GET"]),
]
