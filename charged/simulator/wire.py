"""The simulator's wire helpers: reading a request's JSON body and query values, and the
reference's plain answers (``application/octet-stream`` strings; the invented 409 and the
refresh error as JSON).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from charged.simulator.payloads import BadRequest

NO_BODY = object()


async def json_body(request: web.Request) -> Any:
    """The parsed JSON body, ``NO_BODY`` if there is none, or raise 400 if it is not JSON."""
    try:
        raw = await request.read()
    except ConnectionResetError:
        # the client hung up mid-body (it timed out): nobody is left to answer, and an
        # unhandled error here would print a traceback for a normal event
        raise http_error(web.HTTPBadRequest, "the client closed the connection") from None
    if not raw.strip():
        return NO_BODY
    try:
        return json.loads(raw)
    except ValueError:
        raise http_error(web.HTTPBadRequest, "the body is not valid JSON") from None


async def required_body(request: web.Request) -> Any:
    # The vendor answers a PUT/POST without a body with 403.
    body = await json_body(request)
    if body is NO_BODY:
        raise http_error(web.HTTPForbidden, "this request needs a JSON body (send {} if empty)")
    return body


# The reference describes PUT answers and error bodies as application/octet-stream strings.
PLAIN = "application/octet-stream"


def ok() -> web.Response:
    return web.Response(status=200, body=b"Success", content_type=PLAIN)


def error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=message.encode(), content_type=PLAIN)


def http_error(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    return kind(body=message.encode(), content_type=PLAIN)


def conflict(message: str, code: str) -> web.Response:
    # the invented answer (SimulatorConfig.conflicts): 409 with a JSON body
    body = json.dumps({"error": message, "messageCode": code})
    return web.Response(status=409, text=body, content_type="application/json")


def refresh_error(message: str) -> web.Response:
    return web.json_response({"error": message, "messageCode": "InvalidRefreshToken"}, status=400)


def query_time(request: web.Request, key: str) -> float | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        raise BadRequest(f"{key}: {raw!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # no offset means UTC, as the vendor sends it
    return parsed.timestamp()


def query_count(request: web.Request) -> int | None:
    raw = request.query.get("maxCount")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise BadRequest(f"maxCount: {raw!r} is not a non-negative integer")
    return int(raw)
