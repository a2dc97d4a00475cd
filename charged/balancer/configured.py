"""The balancer as the config describes it: the site (``site:``) and the parameters
(``balancer:``) turned into the model's values."""

from __future__ import annotations

from charged.balancer.model import BalancerParams, ChargerSpec, Fuse, Rotation, Site
from charged.balancer.power_target import TargetSpec
from charged.balancer.runtime import RuntimeMode
from charged.balancer.schedule import LimitSchedule, Period
from charged.config_site import WEEKDAYS, BalancerSettings, FuseSettings, SiteSettings


def site_from_settings(site: SiteSettings) -> Site:
    if site.fuse is None:
        raise ValueError("the config describes no site (site.fuse)")
    off = set(site.vendor_balancing_off)
    chargers = tuple(
        ChargerSpec(
            cp,
            rotation=Rotation.parse(site.rotations.get(cp, "L1L2L3")),
            vendor_balancing_off=cp in off,
        )
        for cp in site.charger_ids()
    )
    return Site(_fuse(site.fuse), chargers, site.margin)


def _fuse(fuse: FuseSettings) -> Fuse:
    return Fuse(
        fuse.name,
        fuse.limits(),
        tuple(_fuse(child) for child in fuse.children),
        tuple(fuse.chargers),
    )


def schedule_from_settings(site: SiteSettings) -> LimitSchedule:
    """The fuses' weekly schedules (empty when no fuse has one)."""
    periods: dict[str, tuple[Period, ...]] = {}
    pending = [] if site.fuse is None else [site.fuse]
    while pending:
        fuse = pending.pop(0)
        pending.extend(fuse.children)
        if fuse.schedule:
            periods[fuse.name] = tuple(
                Period(
                    frozenset(WEEKDAYS.index(day) for day in entry.days),
                    *entry.minutes(),
                    entry.limits(),
                )
                for entry in fuse.schedule
            )
    return LimitSchedule(site.timezone, periods)


def target_from_settings(site: SiteSettings) -> TargetSpec | None:
    """The site's power target (None when there is none)."""
    target = site.power_target
    if target is None:
        return None
    return TargetSpec(
        target_w=target.target_kw * 1000,
        window_s=target.window_min * 60.0,
        monthly=target.monthly,
        voltage=target.voltage,
        timezone=site.timezone,
    )


def params_from_settings(balancer: BalancerSettings) -> BalancerParams:
    return BalancerParams(
        mode=balancer.guarantee,
        fairness=balancer.fairness,
        arrival_limit=balancer.arrival_limit,
        hysteresis=balancer.hysteresis,
        hold_s=balancer.hold_s,
        min_run_s=balancer.min_run_s,
        max_wait_s=balancer.max_wait_s,
        settle_s=balancer.settle_s,
        max_writes_per_tick=balancer.max_writes_per_tick,
    )


def runtime_mode(balancer: BalancerSettings) -> RuntimeMode | None:
    """shadow or active; None when the balancer is off."""
    if balancer.mode == "shadow":
        return "shadow"
    if balancer.mode == "active":
        return "active"
    return None
