"""The typed-call plumbing of the client: GETs parsed into models, writes, payload errors.

Builds on :class:`~charged.chargeamps.transport.Transport` (the request path): a GET's body is
parsed into a model, an unparseable one is counted and logged once per charger, and a write's
2xx is a success whatever its body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from charged.chargeamps.errors import BodyNotJson, PayloadError
from charged.chargeamps.transport import Transport

T = TypeVar("T")


class TypedCalls(Transport):
    """The vendor's answers as models; the client's calls are built on these helpers."""

    _payload_failing: set[str]  # set by ChargeAmpsClient.__init__

    async def _write(
        self,
        method: str,
        template: str,
        *,
        path: Mapping[str, str | int],
        body: Mapping[str, Any] | None = None,
        deadline: float | None = None,
        idempotent: bool = True,
    ) -> Any:
        """A change: the vendor describes its answers as application/octet-stream strings,
        so a 2xx is a success whatever its body (None when it is not JSON); the caller's
        read-back is what verifies the change."""
        try:
            return await self._request(
                method,
                template,
                path=path,
                body=body,
                deadline=deadline,
                idempotent=idempotent,
            )
        except BodyNotJson:
            return None

    # ------------------------------------------------------------ parsing

    async def _fetch(
        self,
        template: str,
        path: Mapping[str, str | int],
        *,
        cp_id: str | None = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
        decode: Callable[[bytes], Any] = json.loads,
    ) -> Any:
        try:
            return await self._request(
                "GET", template, path=path, params=params, deadline=deadline, decode=decode
            )
        except PayloadError as exc:  # the body was not JSON at all
            raise self._payload_problem(exc, template, cp_id) from exc

    async def _get(
        self,
        template: str,
        path: Mapping[str, str | int],
        parse: Callable[[object], T],
        cp_id: str,
        *,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> T:
        data = await self._fetch(template, path, cp_id=cp_id, params=params, deadline=deadline)
        return self._parse(data, parse, template, cp_id)

    def _parse(self, data: object, parse: Callable[[object], T], template: str, cp_id: str) -> T:
        try:
            result = parse(data)
        except PayloadError as exc:
            raise self._payload_problem(exc, template, cp_id) from exc
        self._payload_recovered(cp_id)
        return result

    def _payload_problem(self, exc: PayloadError, template: str, cp_id: str | None) -> PayloadError:
        """Count it; log it the first time for this charger (then only count)."""
        self._metrics.payload_errors.labels(template).inc()
        key = cp_id if cp_id is not None else template
        if key not in self._payload_failing:
            self._payload_failing.add(key)
            self._log.warning(
                "unparseable payload from the vendor API",
                charge_point_id=cp_id,
                endpoint=template,
                reason=str(exc),
            )
        where = f" of {cp_id}" if cp_id is not None else ""
        return PayloadError(f"{template}{where}: {exc}", charge_point_id=cp_id, endpoint=template)

    def _payload_recovered(self, cp_id: str | None) -> None:
        if cp_id is not None and self._payload_failing and cp_id in self._payload_failing:
            self._payload_failing.discard(cp_id)
            self._log.info("payload parseable again", charge_point_id=cp_id)
