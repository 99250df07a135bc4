"""Admin API of the desk's timings (対応の設定; bot/store/desk_settings.py, #14: admins manage settings).

``GET /api/admin/settings`` lists each timing with its value in force, the start value
(environment) and who changed it; ``PUT /api/admin/settings/{name}`` with ``{"value": n}``
sets one, ``{"value": null}`` puts the start value back. Every change is audited with the
admin's client address. Refusals are the app's QueueError answers in Japanese: 404 an unknown
setting, 422 a value out of range; agents and supervisors get 403.
"""

from __future__ import annotations

from typing import Any, Callable

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.server.auth import client_address
from bot.server.desk_api import _admin
from bot.server.http import read_json
from bot.store.desk_settings import SETTINGS, SettingValue

NO_VALUE = "「value」に数値を指定してください（初期値に戻すときは null）。"


def setting_json(setting: SettingValue, display_name: Callable[[str], str]) -> dict[str, Any]:
    """A timing as the console shows it: the value, the start value, what it means, who changed it."""
    spec = SETTINGS[setting.name]
    return {"name": setting.name, "label": spec.label, "help": spec.help, "unit": spec.unit,
            "maximum": spec.maximum, "env": spec.env, "value": setting.value, "default": setting.default,
            "changed_by": setting.changed_by, "changed_at": setting.changed_at,
            "changed_by_name": display_name(setting.changed_by) if setting.changed_by else None}


async def list_settings(request: Request) -> JSONResponse:
    """The desk's timings (admins only).
    ---
    summary: The desk's timings with their values in force
    responses:
      200: {description: "settings: [{name, label, help, unit, maximum, env, value, default, changed_by, changed_by_name, changed_at}]"}
      401: {description: Not logged in}
      403: {description: Not an admin}
    """
    await _admin(request, state_change=False)
    found = await run_in_threadpool(request.app.state.services.stores.desk_settings.all)
    name = request.app.state.services.gateway.display_name
    return JSONResponse({"settings": [setting_json(s, name) for s in found]})


async def change_setting(request: Request) -> JSONResponse:
    """Set one timing, or put its start value back with ``null`` (admins only; audited).
    ---
    summary: Change one of the desk's timings
    requestBody: {content: {application/json: {schema: {type: object, properties: {value: {type: [integer, "null"]}}}}}}
    responses:
      200: {description: "setting: the timing as it is now"}
      400: {description: Malformed JSON, or no value}
      401: {description: Not logged in}
      403: {description: "CSRF, or not an admin"}
      404: {description: Unknown setting}
      422: {description: Not a whole number within range}
    """
    admin = await _admin(request, state_change=True)
    data = await read_json(request)
    if "value" not in data:
        raise HTTPException(400, NO_VALUE)
    changed = await run_in_threadpool(request.app.state.services.stores.desk_settings.change,
                                      request.path_params["name"], data["value"], admin, client_address(request))
    return JSONResponse({"setting": setting_json(changed, request.app.state.services.gateway.display_name)})


routes = [
    Route("/api/admin/settings", list_settings, methods=["GET"]),
    Route("/api/admin/settings/{name}", change_setting, methods=["PUT"]),
]
