"""`charged check`'s site lines: the fuse tree the balancer will work with, and how it
matches the chargers the vendor account owns.

The tree is the balancer's own model of the config (:func:`charged.balancer.configured.
site_from_settings`), so what is printed is what the balancer will use.  Which chargers it
will only shadow is asked of the balancer's own rule (:func:`charged.balancer.failsafe.
shadow_only`), never decided here.

A charger the account owns that no fuse feeds draws current the balancer cannot count: with
``balancer.mode`` shadow or active that is an error (exit 78), with the balancer off a
warning (it must be placed before the balancer is turned on).  A charger in the tree the
account does not own never answers a poll, so the balancer counts it as offline, at its
full limit on every phase: a warning (a typo wastes the fuse's room, it cannot overload it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from charged.balancer.configured import site_from_settings
from charged.balancer.failsafe import shadow_only
from charged.balancer.model import Fuse, Site
from charged.chargeamps.client import ChargeAmpsClient
from charged.chargeamps.errors import ChargeAmpsError
from charged.chargeamps.models import ChargePoint
from charged.check_result import CheckResult, Status
from charged.config import Settings
from charged.config_site import SiteSettings
from charged.exits import EXIT_CONFIG

CHECK = "site"
INDENT = "  "


@dataclass(frozen=True, slots=True)
class AccountChargers:
    """What the vendor says about the account's chargers, as far as it could be read."""

    owned: tuple[ChargePoint, ...]
    # installationCurrent (A) of the site's chargers that the account owns, where read
    installation: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountUnread:
    """Why the account's chargers were not compared with the site."""

    reason: str
    # SKIP: the login failed (the api line says so); WARN: the login worked, the list did not
    status: Status = Status.SKIP


async def read_account(
    client: ChargeAmpsClient, site: Site, *, deadline: float | None
) -> AccountChargers:
    """The owned chargers, then the installation current of each one the site places
    (one settings read each, side by side; the client caps their concurrency and rate).

    Raises ChargeAmpsError when the owned list cannot be read; a settings read that fails
    only leaves that charger's installation current unknown."""
    owned = tuple(await client.owned_chargepoints(deadline=deadline))
    placed = [cp.id for cp in owned if site.charger(cp.id) is not None]
    answers = await asyncio.gather(
        *(client.chargepoint_settings(cp_id, deadline=deadline) for cp_id in placed),
        return_exceptions=True,
    )
    installation: dict[str, float] = {}
    for cp_id, answer in zip(placed, answers, strict=True):
        if isinstance(answer, ChargeAmpsError):
            continue  # shown as "not read" in the tree: it is information, not a check
        if isinstance(answer, BaseException):
            raise answer
        if answer.installation_current is not None:
            installation[cp_id] = float(answer.installation_current)
    return AccountChargers(owned, installation)


def check_site(settings: Settings, account: AccountChargers | AccountUnread) -> list[CheckResult]:
    """The tree, then one line per charger that is unplaced, not owned or shadow only.

    ``account`` is what the vendor said, or why it could not be asked: then the tree is
    still printed and the comparison is left out, with a line saying why."""
    site = site_from_settings(settings.site)
    mode = settings.balancer.mode
    where = f"{settings.source}: site"
    over_time = _over_time(settings.site)
    if isinstance(account, AccountUnread):
        return [
            _summary(site, mode, where, None, {}, over_time),
            CheckResult(
                CHECK,
                account.status,
                f"the account's chargers not compared with the site: {account.reason}",
            ),
        ]
    shadow = shadow_only(site, account.owned)
    results = [_summary(site, mode, where, account, shadow, over_time)]
    for cp in account.owned:
        if site.charger(cp.id) is None:
            results.append(_unplaced(cp, mode))
    owned = {cp.id for cp in account.owned}
    for spec in site.chargers:
        if spec.id not in owned:
            fuse = site.fuses_of(spec.id)[-1].name
            results.append(
                CheckResult(
                    CHECK,
                    Status.WARN,
                    f"charger {spec.id} is under fuse {fuse} but the account does not own it: "
                    "correct the id or remove it from site; until then the balancer counts it "
                    "as offline, at its full limit on every phase",
                    data={"charge_point_id": spec.id, "problem": "not_owned"},
                )
            )
    for cp_id, why in shadow.items():
        results.append(
            CheckResult(
                CHECK,
                Status.WARN,
                f"charger {cp_id}: {why}",
                data={"charge_point_id": cp_id, "problem": "shadow_only", "reason": why},
            )
        )
    return results


def _unplaced(cp: ChargePoint, mode: str) -> CheckResult:
    named = f"charger {cp.id}" + (f" ({cp.name})" if cp.name else "")
    what = (
        f"{named} is the account's but under no fuse of the site: add it to the chargers of "
        "the fuse that feeds it"
    )
    data = {"charge_point_id": cp.id, "problem": "unplaced"}
    if mode == "off":
        return CheckResult(
            CHECK,
            Status.WARN,
            f"{what} before setting balancer.mode to shadow or active",
            data=data,
        )
    return CheckResult(
        CHECK,
        Status.FAIL,
        f"{what} (balancer.mode is {mode}: the balancer cannot count what it draws)",
        EXIT_CONFIG,
        data=data,
    )


@dataclass(frozen=True, slots=True)
class _OverTime:
    """The site's limits over time, as lines of the tree: schedules per fuse, the target."""

    schedules: Mapping[str, str]  # fuse name -> its schedule in one line
    target: str | None  # the power target in one line


def _over_time(site: SiteSettings) -> _OverTime:
    schedules: dict[str, str] = {}
    pending = [] if site.fuse is None else [site.fuse]
    while pending:
        fuse = pending.pop()
        pending.extend(fuse.children)
        if fuse.schedule:
            entries = "; ".join(
                f"{','.join(e.days)} {e.start}–{e.end} {_amps(e.limits())}" for e in fuse.schedule
            )
            schedules[fuse.name] = f"schedule ({site.timezone}): {entries}"
    target = None
    if site.power_target is not None:
        t = site.power_target
        monthly = ", raised to the month's highest window mean" if t.monthly else ""
        target = (
            f"power target {t.target_kw:g} kW mean per {t.window_min}-min window{monthly} "
            f"({t.voltage:g} V per phase), on fuse {site.fuse.name if site.fuse else '?'}"
        )
    return _OverTime(schedules, target)


def _summary(
    site: Site,
    mode: str,
    where: str,
    account: AccountChargers | None,
    shadow: Mapping[str, str],
    over_time: _OverTime = _OverTime({}, None),
) -> CheckResult:
    fuses = site.fuses()
    message = (
        f"{where} with {len(fuses)} fuse{'s' if len(fuses) != 1 else ''}, "
        f"{len(site.chargers)} charger{'s' if len(site.chargers) != 1 else ''} placed, "
        f"margin {site.margin:g} A; balancer.mode {mode}"
    )
    owned = None if account is None else {cp.id for cp in account.owned}
    notes = _ChargerNotes(account, owned, shadow, over_time.schedules)
    lines = _tree_lines(site, site.root, 0, notes)
    if over_time.target is not None:
        lines.append(over_time.target)
    return CheckResult(
        CHECK,
        Status.OK,
        message,
        details=tuple(lines),
        data={
            "mode": mode,
            "margin": site.margin,
            "tree": _fuse_json(site, site.root, notes),
        },
    )


@dataclass(frozen=True, slots=True)
class _ChargerNotes:
    """What the account adds to a charger's line of the tree."""

    account: AccountChargers | None
    owned: set[str] | None  # None: not known (the account was not read)
    shadow: Mapping[str, str]
    schedules: Mapping[str, str] = field(default_factory=dict)  # fuse -> its schedule line

    def installation(self, cp_id: str) -> float | None:
        return None if self.account is None else self.account.installation.get(cp_id)

    def flags(self, cp_id: str) -> list[str]:
        out: list[str] = []
        if self.owned is not None and cp_id not in self.owned:
            out.append("not owned by the account")
        if cp_id in self.shadow:
            out.append("shadow only")
        return out


def _tree_lines(site: Site, fuse: Fuse, depth: int, notes: _ChargerNotes) -> list[str]:
    pad = INDENT * depth
    lines = [f"{pad}fuse {fuse.name}: {_limits(site, fuse)}"]
    if fuse.name in notes.schedules:
        lines.append(f"{pad}{INDENT}{notes.schedules[fuse.name]}")
    for cp_id in fuse.chargers:
        spec = site.charger(cp_id)
        rotation = str(spec.rotation) if spec is not None else "L1L2L3"
        amps = notes.installation(cp_id)
        installed = f"{amps:g} A" if amps is not None else "not read"
        parts = [f"rotation {rotation}", f"installation current {installed}", *notes.flags(cp_id)]
        lines.append(f"{pad}{INDENT}charger {cp_id}: {', '.join(parts)}")
    for child in fuse.children:
        lines.extend(_tree_lines(site, child, depth + 1, notes))
    return lines


def _limits(site: Site, fuse: Fuse) -> str:
    """``63 A per phase`` or ``40/40/32 A on L1/L2/L3``, and what the margin leaves."""
    if len(set(fuse.limit)) == 1:
        limit = f"{fuse.limit[0]:g} A per phase"
    else:
        limit = f"{_amps(fuse.limit)} on L1/L2/L3"
    if site.margin == 0:
        return limit
    return f"{limit}, {_amps(site.capacity(fuse))} usable with the {site.margin:g} A margin"


def _amps(per_phase: Sequence[float]) -> str:
    """``61 A`` or ``38/38/30 A``."""
    if len(set(per_phase)) == 1:
        return f"{per_phase[0]:g} A"
    return "/".join(f"{a:g}" for a in per_phase) + " A"


def _fuse_json(site: Site, fuse: Fuse, notes: _ChargerNotes) -> dict[str, Any]:
    chargers = []
    for cp_id in fuse.chargers:
        spec = site.charger(cp_id)
        chargers.append(
            {
                "id": cp_id,
                "rotation": str(spec.rotation) if spec is not None else "L1L2L3",
                "installation_current": notes.installation(cp_id),
                "owned": None if notes.owned is None else cp_id in notes.owned,
                "shadow_only": notes.shadow.get(cp_id),
            }
        )
    return {
        "name": fuse.name,
        "limit": list(fuse.limit),
        "capacity": list(site.capacity(fuse)),
        "chargers": chargers,
        "children": [_fuse_json(site, child, notes) for child in fuse.children],
    }
